/**
 * Prometheus text metrics: requests by action and decision, a histogram of the Defender's own decision time
 * (request head received → decision made, body inspection included), streams in flight and rule reloads.
 */
import { createServer, type Server } from 'node:http';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class DefenderMetrics {
  private readonly requests = new Map<string, number>();
  private readonly histogram = new Array<number>(BUCKETS.length + 1).fill(0);
  private latencySum = 0;
  private latencyCount = 0;
  private reloads = { ok: 0, error: 0 };
  activeStreams = 0;
  rules = 0;

  countRequest(action: string, decision: string): void {
    const key = `${action}\u0000${decision}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  observeLatency(seconds: number): void {
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    this.histogram[i]!++;
    this.latencySum += seconds;
    this.latencyCount++;
  }

  countReload(ok: boolean): void {
    this.reloads[ok ? 'ok' : 'error']++;
  }

  render(): string {
    const out: string[] = [
      '# HELP drawbridge_requests_total Requests by Docker action and decision.',
      '# TYPE drawbridge_requests_total counter',
    ];
    for (const [key, n] of [...this.requests].sort()) {
      const [action, decision] = key.split('\u0000');
      out.push(`drawbridge_requests_total{action="${action}",decision="${decision}"} ${n}`);
    }
    out.push('# HELP drawbridge_request_duration_seconds Time from the request head to the decision, body inspection included.', '# TYPE drawbridge_request_duration_seconds histogram');
    let cumulative = 0;
    BUCKETS.forEach((b, i) => {
      cumulative += this.histogram[i]!;
      out.push(`drawbridge_request_duration_seconds_bucket{le="${b}"} ${cumulative}`);
    });
    out.push(
      `drawbridge_request_duration_seconds_bucket{le="+Inf"} ${this.latencyCount}`,
      `drawbridge_request_duration_seconds_sum ${this.latencySum}`,
      `drawbridge_request_duration_seconds_count ${this.latencyCount}`,
      '# HELP drawbridge_active_streams Hijacked or streaming connections in flight.',
      '# TYPE drawbridge_active_streams gauge',
      `drawbridge_active_streams ${this.activeStreams}`,
      '# HELP drawbridge_rules Access rules in force.',
      '# TYPE drawbridge_rules gauge',
      `drawbridge_rules ${this.rules}`,
      '# HELP drawbridge_rules_reloads_total Rules file reloads by result.',
      '# TYPE drawbridge_rules_reloads_total counter',
      `drawbridge_rules_reloads_total{result="ok"} ${this.reloads.ok}`,
      `drawbridge_rules_reloads_total{result="error"} ${this.reloads.error}`,
    );
    return `${out.join('\n')}\n`;
  }

  serve(): Server {
    return createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.render());
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      }
    });
  }
}
