/**
 * The public entry of main/ (STYLE.md layering: test/ and other parts reach main/ only through here): the
 * companion core, plain Node modules with no electron import. The Electron shell and the CLI build on these.
 */
export * from './companion/atomic-file.js';
export * from './companion/docker-config.js';
export * from './companion/docker-context-store.js';
export * from './companion/docker-cert-files.js';
export * from './companion/secret-store.js';
export * from './companion/env-command.js';
