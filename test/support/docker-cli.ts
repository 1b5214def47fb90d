/**
 * The real docker CLI, driven from end-to-end tests.
 *
 * - Every run has a deadline: a hang kills the CLI (SIGKILL) and fails with what it printed so far, instead of
 *   blocking the test run.
 * - A non-zero exit is a result, not an exception: tests assert on `code`, `stdout` and `stderr`.
 * - stdin is a pipe that is ended after `input` (or at once), so the CLI sees a real end of file — the half-close
 *   that `docker run -i` and `docker exec -i` turn into a CloseWrite on the hijacked connection.
 * - `startDocker` is for streaming commands (`logs -f`, `attach`): the test waits for output, writes to stdin,
 *   and stops the CLI itself.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface DockerResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface DockerOptions {
  readonly env: NodeJS.ProcessEnv;
  /** Written to the CLI's stdin, which is then ended. */
  readonly input?: string | Buffer;
  readonly cwd?: string;
  /** Default 60 s. */
  readonly timeoutMs?: number;
}

export interface RunningDocker {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout satisfies `done`; rejects (with the output so far) at the deadline or if the CLI exits first. */
  waitForStdout(done: (stdout: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves when the CLI exits; rejects at the deadline (after killing it). */
  exited(timeoutMs?: number): Promise<DockerResult>;
  /** SIGKILL if still running (for cleanup). */
  kill(): void;
}

const describeRun = (args: readonly string[], out: string, err: string): string =>
  `docker ${args.join(' ')}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`;

/** Starts `docker ARGS` and hands back the running process. */
export function startDocker(args: readonly string[], opts: Omit<DockerOptions, 'input' | 'timeoutMs'>): RunningDocker {
  const child = spawn('docker', [...args], { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  child.stdin.on('error', () => undefined); // the CLI may exit before reading all of its input
  const exit = new Promise<DockerResult>((resolve, reject) => {
    child.once('error', reject);
    // 'close', not 'exit': all output has been read by then.
    child.once('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
  exit.catch(() => undefined);
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStdout(done, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!done(out)) return;
          cleanup();
          resolve(out);
        };
        const onClose = (): void => {
          cleanup();
          if (done(out)) resolve(out);
          else reject(new Error(`the CLI exited (${child.exitCode ?? child.signalCode}) before the expected output: ${describeRun(args, out, err)}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no expected output after ${timeoutMs} ms: ${describeRun(args, out, err)}`));
        }, timeoutMs);
        function cleanup(): void {
          clearTimeout(timer);
          child.stdout.off('data', check);
          child.off('close', onClose);
        }
        child.stdout.on('data', check);
        child.once('close', onClose);
        check();
      });
    },
    exited(timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`still running after ${timeoutMs} ms (killed): ${describeRun(args, out, err)}`));
        }, timeoutMs);
        exit.then(
          (result) => {
            clearTimeout(timer);
            resolve(result);
          },
          (error: Error) => {
            clearTimeout(timer);
            reject(error);
          },
        );
      });
    },
    kill() {
      if (running()) child.kill('SIGKILL');
    },
  };
}

/** Runs `docker ARGS` to completion. */
export async function docker(args: readonly string[], opts: DockerOptions): Promise<DockerResult> {
  const run = startDocker(args, opts);
  if (opts.input !== undefined) run.child.stdin.end(opts.input);
  else run.child.stdin.end();
  return run.exited(opts.timeoutMs ?? 60_000);
}

/** Runs `docker ARGS` and returns stdout; anything but exit 0 throws with the CLI's output. */
export async function dockerOk(args: readonly string[], opts: DockerOptions): Promise<string> {
  const result = await docker(args, opts);
  if (result.code !== 0) throw new Error(`exit ${result.code ?? result.signal}: ${describeRun(args, result.stdout, result.stderr)}`);
  return result.stdout;
}
