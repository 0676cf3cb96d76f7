import { config } from "zod/v4/core";

// The served CSP allows no eval, and zod probes for it (`new Function`) when it builds an object schema
// unless told not to: a caught probe is still reported as a CSP violation. This module is main.tsx's first
// import, so it runs before any module that builds a schema, whichever chunk the bundler puts that in.
config({ jitless: true });
