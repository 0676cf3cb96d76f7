import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console: sources in src/web, built into dist/web and served by the server process.
export default defineConfig({
  root: "src/web",
  publicDir: "../../public",
  plugins: [react()],
  build: {
    outDir: "../../dist/web",
    emptyOutDir: true,
    // Maps without the sourceMappingURL comment; scripts/precompress.ts moves them to dist/sourcemaps,
    // out of what the server serves.
    sourcemap: "hidden",
  },
});
