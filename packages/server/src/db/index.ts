/**
 * The coordinator's storage: open (connect.ts), migrate (migrations.ts), use
 * (repository.ts: the Store, one store per kind of record). Everything the
 * rest of the server needs comes from here.
 */
export {
  type CoordinatorDb,
  type Dialect,
  type OpenDatabaseOptions,
  openDatabase,
  redactUrl,
} from './connect.js';
export { classifyDbError, type DbFailure, dbError } from './errors.js';
export { MIGRATIONS, migrate } from './migrations.js';
export * from './repository.js';
export type { Tables } from './schema.js';
