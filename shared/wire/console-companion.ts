/**
 * Wire types between the Console's API and the companion (the CLI, later the desktop app): what
 * `GET /api/v1/me/hosts` answers. The Console builds these and the companion reads them; both import them from
 * here, so a field changes in one place.
 */

export interface ActionDecision {
  readonly allowed: boolean;
  /** The deciding rule, or null for the default deny-all rule. */
  readonly rule: string | null;
}

/** One Defender host the caller can reach, with what they may do there. */
export interface MyHost {
  readonly hostName: string;
  /** `tcp://host:port`, `unix:///path` (usable on that machine only), or null when no address is known. */
  readonly dockerHost: string | null;
  readonly listener: 'tcp' | 'unix';
  readonly connected: boolean;
  readonly lastSeen: string | null;
  readonly permissions: Readonly<Record<string, ActionDecision>>;
  /** "can run containers, list containers; cannot exec". */
  readonly summary: string;
}
