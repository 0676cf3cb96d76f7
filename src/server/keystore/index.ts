import { envKeystore } from "./env-provider.js";
import { fileKeystore } from "./file-provider.js";
import { registerKeystoreProvider } from "./provider.js";

registerKeystoreProvider("env", envKeystore);
registerKeystoreProvider("file", fileKeystore);

export type { TrustConfig } from "./config.js";
export {
  deriveKey,
  KeystoreError,
  type KeystoreProvider,
  openKeystore,
  registerKeystoreProvider,
} from "./provider.js";
