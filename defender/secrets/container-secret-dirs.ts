/**
 * The lifetime of containers' secret directories on the host:
 *
 * - Written before dockerd sees the create (its bind source must exist) and again before every start or restart
 *   through the Defender, with the values in force then.
 * - Kept while dockerd will run the container again by itself: after a `die`, dockerd has already decided about
 *   its restart policy (always, unless-stopped, on-failure with a non-zero exit and retries left) and marked it
 *   Restarting (State.Running stays true) — or it is running again. A `docker stop` marks it manually stopped
 *   first, so its `die` finds it neither running nor restarting.
 * - Removed when no running or restarting container owns the directory after a `die`, `stop` or `destroy`
 *   (dockerd's events). An owner is a container carrying the instance marker AND mounting the directory: markers
 *   can come from an image's labels (a container created from an image that carries them), and such a container
 *   must neither keep another container's files alive nor have them removed. A `die` is ignored while a start or
 *   restart of that container is going through the Defender (the files are being written for it).
 * - Swept whenever the event stream (re)connects, Defender start included: directories without a running owner
 *   (the container is stopped or gone) are removed; running ones are refreshed with the values in force.
 * - New values (a snapshot with rotated secrets) are rewritten into every running container's directory.
 * - Only names and instance ids are logged.
 */
import { currentFileSecrets } from '../../shared/secrets/inject-secrets.js';
import { INSTANCE_ID, readMarkers, SECRET_LABELS, type SecretMarkers } from '../../shared/secrets/secret-labels.js';
import type { DockerUpstream } from '../docker-upstream.js';
import type { Logger } from '../log.js';
import { watchContainerEvents, type ContainerEvent, type EventWatch } from './container-events.js';
import { listMarkedContainers, lookupContainer } from './docker-lookup.js';
import { presentAt } from '../owned-dir.js';
import type { SecretFiles } from './secret-files.js';
import type { SecretsInForce } from './secrets-in-force.js';

export class ContainerSecretDirs {
  /** Running (or just created) containers' directories and what they carry. */
  private readonly live = new Map<string, SecretMarkers>();
  /** Instances with a create, start or restart going through the Defender now (count). */
  private readonly busy = new Map<string, number>();
  private watch: EventWatch | null = null;

  constructor(
    readonly files: SecretFiles,
    private readonly secrets: SecretsInForce,
    private readonly upstream: DockerUpstream,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.watch = watchContainerEvents(this.upstream, this.log, {
      onConnected: () => void this.sweep(),
      onEvent: (e) => void this.onEvent(e),
    });
  }

  stop(): void {
    this.watch?.stop();
  }

  /** Marks `instance` busy until the returned function is called. */
  hold(instance: string): () => void {
    this.busy.set(instance, (this.busy.get(instance) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.busy.get(instance) ?? 1) - 1;
      if (n <= 0) this.busy.delete(instance);
      else this.busy.set(instance, n);
    };
  }

  /** Writes the container's files now, from the rules and values in force (throws 503 when it cannot). */
  provide(markers: SecretMarkers): void {
    const files = currentFileSecrets(markers, this.secrets.rules, this.secrets.values);
    this.files.write(markers.instance, files);
    this.live.set(markers.instance, markers);
  }

  /** Writes a new container's files (at create, before dockerd sees the request). */
  provideNew(markers: SecretMarkers, files: Parameters<SecretFiles['write']>[1]): void {
    this.files.write(markers.instance, files);
    this.live.set(markers.instance, markers);
  }

  remove(instance: string, why: string): void {
    this.live.delete(instance);
    try {
      if (!presentAt(this.files.hostDir(instance))) return; // a link counts: it is removed, not followed
      this.files.remove(instance);
      this.log.info('file secrets removed from the host', { instance, why });
    } catch (e) {
      this.log.error('cannot remove a secret directory', { instance, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
    }
  }

  /** New values or rules: rewrite every running container's files. */
  refresh(): void {
    for (const [instance, markers] of this.live) {
      try {
        this.files.write(instance, currentFileSecrets(markers, this.secrets.rules, this.secrets.values));
      } catch (e) {
        this.log.warn('file secrets of a running container not refreshed; it keeps the previous values', { instance, rules: markers.rules.join(','), reason: (e as Error).message.replace(/^\[Drawbridge\] /, '') });
      }
    }
  }

  /** Whether `c` really holds `instance`'s directory (created with it by the Defender), and runs or will run again. */
  private owns(c: { running: boolean; mountSources: readonly string[] }, instance: string): boolean {
    return c.running && c.mountSources.includes(this.files.hostDir(instance));
  }

  private async onEvent(e: ContainerEvent): Promise<void> {
    const instance = e.attributes[SECRET_LABELS.instance] ?? '';
    if (!INSTANCE_ID.test(instance)) return;
    if (this.busy.has(instance)) return;
    try {
      // The container itself by inspect (current state; the list answers from a view dockerd updates after the
      // event), then any other container carrying the marker (when this one's marker was forged).
      const self = e.action === 'destroy' ? null : await lookupContainer(this.upstream, e.id);
      if (self && this.owns(self, instance)) return; // restarting, or restarted already
      const holders = await listMarkedContainers(this.upstream, instance);
      if (holders.some((c) => c.id !== e.id && this.owns(c, instance))) return; // the event was a forged marker's
    } catch {
      /* cannot tell: remove (the secret must not outlive the container) */
    }
    if (this.busy.has(instance)) return;
    this.remove(instance, `container ${e.action}`);
  }

  /** Removes directories of containers that are not running; refreshes the running ones. */
  async sweep(): Promise<void> {
    let containers;
    try {
      containers = await listMarkedContainers(this.upstream);
    } catch (e) {
      this.log.warn('file secrets: cannot list containers to clean up secret directories; will retry on reconnect', { error: (e as Error).message });
      return;
    }
    const running = new Map<string, SecretMarkers>();
    for (const c of containers) {
      const markers = readMarkers(c.labels);
      if (markers?.instance && this.owns(c, markers.instance)) running.set(markers.instance, markers);
    }
    for (const instance of this.files.instances()) {
      if (this.busy.has(instance)) continue;
      if (!running.has(instance)) this.remove(instance, 'container not running');
      else this.live.set(instance, running.get(instance)!);
    }
    for (const instance of this.live.keys()) if (!running.has(instance) && !this.busy.has(instance)) this.live.delete(instance);
    this.refresh();
  }
}
