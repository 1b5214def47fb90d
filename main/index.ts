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
export * from './companion/companion-errors.js';
export * from './companion/companion-state.js';
export * from './companion/companion-status.js';
export * from './companion/console-https.js';
export * from './companion/login.js';
export * from './companion/logout.js';
export * from './companion/renew-certificate.js';
export * from './companion/renewal-agent.js';
export * from './companion/use-host.js';
export * from './companion/open-browser.js';
