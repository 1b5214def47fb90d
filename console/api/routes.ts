/**
 * The Console's route groups beyond auth and users: one line per group, so the whole API is visible here.
 * (auth, users and openapi.json are wired in server.ts.)
 */
import type { RouteGroup } from '../server.js';
import { certRoutes } from './cert-routes.js';
import { defenderRoutes } from './defender-routes.js';
import { meRoutes } from './me-routes.js';
import { ruleRoutes } from './rule-routes.js';
import { secretRoutes } from './secret-routes.js';

export const ROUTE_GROUPS: readonly RouteGroup[] = [ruleRoutes, certRoutes, defenderRoutes, meRoutes, secretRoutes];
