/**
 * A protocol fake of the CyberArk Central Credential Provider (CCP) REST web service: no CyberArk can run here,
 * so this answers `GET /AIMWebService/api/Accounts?AppID=…&Safe=…&Folder=…&Object=…` as the CCP documentation
 * ("Call the Central Credential Provider Web Service from your application using REST", CyberArk docs) shows:
 * 200 with the account as a JSON object (`Content` is the password, plus UserName, Address, Safe, Folder, Name,
 * PolicyID, …), errors as `{"ErrorCode": "…", "ErrorMsg": "…"}`:
 *
 * - no AppID → 400 AIMWS030E; an unknown application, one not allowed on the Safe, or (when the application
 *   requires a client certificate) a request without that certificate → 403 APPAP306E;
 * - no matching object → 404 APPAP004E.
 * - Folder defaults to `Root`, as in CCP.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ProtocolServer, sendJson, type ListenOptions } from './protocol-server.js';

interface Application {
  readonly safes: readonly string[];
  /** When set, the client certificate's CN must be this. */
  readonly certificateCn?: string;
}

export class CyberArkServer {
  readonly server: ProtocolServer;
  readonly apps = new Map<string, Application>();
  /** `<Safe>/<Folder>/<Object>` → account properties */
  readonly accounts = new Map<string, Record<string, string>>();

  constructor(options: ListenOptions = {}) {
    this.server = new ProtocolServer((req, _body, res) => this.#handle(req, res), options);
  }

  /** Back to empty: no applications or accounts; counters cleared. */
  reset(): void {
    this.apps.clear();
    this.accounts.clear();
    this.server.resetCounts();
  }

  addAccount(safe: string, object: string, properties: Record<string, string>, folder = 'Root'): void {
    this.accounts.set(`${safe}/${folder}/${object}`, { Safe: safe, Folder: folder, Name: object, PolicyID: 'UnixSSH', DeviceType: 'Operating System', ...properties });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://ccp');
    if (req.method !== 'GET' || url.pathname !== '/AIMWebService/api/Accounts') {
      this.server.unknown.push(`${req.method} ${url.pathname}`);
      return sendJson(res, 404, { ErrorCode: 'AIMWS001E', ErrorMsg: 'The requested resource was not found' });
    }
    this.server.count('accounts');
    const q = url.searchParams;
    const appId = q.get('AppID');
    const object = q.get('Object');
    const safe = q.get('Safe');
    const folder = q.get('Folder') ?? 'Root';
    if (!appId) return sendJson(res, 400, { ErrorCode: 'AIMWS030E', ErrorMsg: 'Invalid query format. AppID parameter is missing.' });
    const app = this.apps.get(appId);
    const peerCn = (req.socket as Partial<TLSSocket>).getPeerCertificate?.()?.subject?.CN;
    const authorised = (req.socket as Partial<TLSSocket>).authorized === true;
    const certOk = !app?.certificateCn || (authorised && peerCn === app.certificateCn);
    if (!app || !certOk || (safe !== null && !app.safes.includes(safe))) {
      this.server.count('refused');
      return sendJson(res, 403, { ErrorCode: 'APPAP306E', ErrorMsg: `Failed to authenticate application [${appId}]` });
    }
    const matches = [...this.accounts.entries()].filter(([key]) => {
      const [s, f, o] = key.split('/') as [string, string, string];
      return (safe === null ? app.safes.includes(s) : s === safe) && f === folder && (object === null || o === object);
    });
    if (matches.length === 0) return sendJson(res, 404, { ErrorCode: 'APPAP004E', ErrorMsg: `Password object matching query [Safe=${safe ?? ''};Folder=${folder};Object=${object ?? ''}] was not found (Diagnostic Info: 5). Please check that there is a password object that answers your query in the Vault and that both the Provider and the application user have the appropriate permissions needed in order to use the password.` });
    if (matches.length > 1) return sendJson(res, 400, { ErrorCode: 'APPAP227E', ErrorMsg: 'Too many password objects matching query' });
    return sendJson(res, 200, matches[0]![1]);
  }
}
