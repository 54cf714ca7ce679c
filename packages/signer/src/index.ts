/** @custos/signer: the signer daemon and its parts. */
export { runDaemon } from './daemon.js';
export {
  createKeystore,
  defaultPath,
  type KeystorePublic,
  keystoreFile,
  keystorePublic,
  unlockKeystore,
  writeKeystore,
} from './keystore.js';
export { signerCommand, signerConfig } from './main.js';
export { type GovernanceSource, Signer, type SignerEvmOptions, type SignerOptions } from './signer.js';
export { HttpJobSource, type JobSource } from './source.js';
export { SignerStore } from './store.js';
