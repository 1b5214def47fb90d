/**
 * The certificate install command and the POSIX sh script it runs (Prisma Cloud's "User Certificates" flow).
 *
 * - The command is `printf '%s\n' 'header = "X-Drawbridge-Install-Token: dbi_…"' | curl -fsSL --pinnedpubkey
 *   'sha256//…' -k -K - '<console>/api/v1/certs/install.sh' | sh`. The token is in no process's arguments: any user
 *   of the machine can read those (/proc/<pid>/cmdline), and could take the token while key generation runs.
 *   `printf` is a shell builtin, and curl reads the header from its standard input (`-K -`, a curl config); the
 *   script sends it the same way. Nor is it in a URL, which proxies and access logs keep.
 *   The user's machine does not trust the Console's private CA yet (getting that CA is what the script is for), so
 *   `-k` turns off CA and host-name checks, and `--pinnedpubkey` puts back a stricter one: curl aborts before
 *   sending anything unless the server's public key hashes to exactly the pin, i.e. it is this Console's key.
 *   The script talks back to the Console the same way.
 * - The script generates an ECDSA P-256 key locally (umask 077, key 0600) and sends only a CSR; the private key
 *   never leaves the machine.
 * - It writes `ca.pem`, `cert.pem`, `key.pem` into `${DOCKER_CERT_PATH:-$HOME/.docker}` (directory 0700, files
 *   0600), where the docker CLI looks with DOCKER_TLS_VERIFY=1. Existing files are moved to
 *   `<name>.bak-<UTC timestamp>` and the script says so: nothing is silently overwritten. Nothing is touched
 *   until the certificate is in hand and checked (chains to the CA, matches the key).
 * - `set -eu`; every failure prints one `drawbridge install: …` line on stderr and exits 1.
 * - Every value interpolated into the script is single-quoted (`shQuote`).
 */

/** Quotes a value for POSIX sh: inside single quotes only `'` itself needs care. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The request header that carries an install token (never the query string). */
export const INSTALL_TOKEN_HEADER = 'X-Drawbridge-Install-Token';

/** The curl config line (`curl -K -` reads it on stdin) that sends the install token as its header. */
function tokenCurlConfig(token: string): string {
  return `header = "${INSTALL_TOKEN_HEADER}: ${token}"`;
}

export function installCommand(scriptUrl: string, pin: string, token: string): string {
  return `printf '%s\\n' ${shQuote(tokenCurlConfig(token))} | curl -fsSL --pinnedpubkey ${shQuote(pin)} -k -K - ${shQuote(scriptUrl)} | sh`;
}

/**
 * The script served when the token cannot be used. It is served with 200 on purpose: behind `curl -f … | sh` an
 * HTTP error makes curl print a bare status and sh run nothing and exit 0, so the user would never learn why.
 */
export function installRefusalScript(reason: string): string {
  return `#!/bin/sh
# Drawbridge certificate install: this command cannot be used.
printf 'drawbridge install: %s\\n' ${shQuote(reason)} >&2
exit 1
`;
}

export interface InstallScriptInput {
  /** The Console's public URL, without a trailing slash. */
  readonly consoleUrl: string;
  /** curl's --pinnedpubkey value for the Console's TLS key. */
  readonly pin: string;
  readonly token: string;
  readonly user: string;
  readonly caPem: string;
}

export function installScript(input: InstallScriptInput): string {
  const ca = input.caPem.trimEnd();
  if (ca.split('\n').includes('DRAWBRIDGE_CA')) throw new Error('the CA PEM contains the here-document delimiter');
  return `#!/bin/sh
# Drawbridge: installs a Docker client certificate for ${input.user.replace(/[^\x20-\x7e]/g, '?')} from the Drawbridge Console.
# The private key is generated on this machine and never leaves it; only a certificate request is sent.
set -eu
umask 077

CONSOLE=${shQuote(input.consoleUrl)}
PIN=${shQuote(input.pin)}
TOKEN_CONFIG=${shQuote(tokenCurlConfig(input.token))}

say() { printf '%s\\n' "$*"; }
fail() { printf 'drawbridge install: %s\\n' "$*" >&2; exit 1; }

for tool in openssl curl; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required but was not found; install it and run the command again"
done
if [ -z "\${DOCKER_CERT_PATH:-}" ] && [ -z "\${HOME:-}" ]; then
  fail 'neither DOCKER_CERT_PATH nor HOME is set: nowhere to install the certificate'
fi
DEST=\${DOCKER_CERT_PATH:-$HOME/.docker}

mkdir -p "$DEST" || fail "cannot create $DEST"
chmod 700 "$DEST"
WORK="$DEST/.drawbridge-install.$$"
rm -rf "$WORK"
mkdir "$WORK"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' HUP INT TERM

# The key: ECDSA P-256, created 0600 (umask 077), never sent anywhere.
openssl ecparam -genkey -name prime256v1 -noout -out "$WORK/key.pem" || fail 'openssl could not generate a P-256 key'
# The Console ignores this subject: your certificate names you and your groups as the Console knows them.
openssl req -new -sha256 -key "$WORK/key.pem" -subj '/CN=drawbridge-install' -out "$WORK/csr.pem" || fail 'openssl could not create the certificate request'
awk 'BEGIN { printf "{\\"csr\\":\\"" } { printf "%s\\\\n", $0 } END { print "\\"}" }' "$WORK/csr.pem" > "$WORK/request.json"

# Same trust as the command that fetched this script: -k, and the Console's public key pinned. The token goes to
# curl on its standard input (a curl config line), never in its arguments, which other users could read.
STATUS=$(printf '%s\\n' "$TOKEN_CONFIG" | curl -sS --pinnedpubkey "$PIN" -k -K - -X POST \\
  -H 'Content-Type: application/json' -H 'Accept: application/x-pem-file' \\
  --data-binary "@$WORK/request.json" -o "$WORK/response" -w '%{http_code}' \\
  "$CONSOLE/api/v1/certs/install") || fail "could not reach the Console at $CONSOLE (see curl's message above)"
if [ "$STATUS" != 201 ]; then
  REASON=$(sed -n 's/.*"message":"\\([^"]*\\)".*/\\1/p' "$WORK/response" 2>/dev/null | head -n 1)
  fail "the Console refused the certificate request (HTTP $STATUS): \${REASON:-no reason given}"
fi
mv "$WORK/response" "$WORK/cert.pem"
cat > "$WORK/ca.pem" <<'DRAWBRIDGE_CA'
${ca}
DRAWBRIDGE_CA

openssl verify -CAfile "$WORK/ca.pem" "$WORK/cert.pem" >/dev/null || fail 'the certificate received does not chain to the Console CA'
KEY_PUB=$(openssl pkey -in "$WORK/key.pem" -pubout) || fail 'cannot read the generated key'
CERT_PUB=$(openssl x509 -in "$WORK/cert.pem" -noout -pubkey) || fail 'cannot read the certificate received'
[ "$KEY_PUB" = "$CERT_PUB" ] || fail 'the certificate received is not for the generated key'

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
for f in ca.pem cert.pem key.pem; do
  if [ -e "$DEST/$f" ] || [ -L "$DEST/$f" ]; then
    BACKUP="$DEST/$f.bak-$STAMP"
    n=1
    while [ -e "$BACKUP" ] || [ -L "$BACKUP" ]; do
      BACKUP="$DEST/$f.bak-$STAMP.$n"
      n=$((n + 1))
    done
    mv "$DEST/$f" "$BACKUP"
    say "Backed up the existing $DEST/$f to $BACKUP"
  fi
done
for f in ca.pem cert.pem key.pem; do
  chmod 600 "$WORK/$f"
  mv "$WORK/$f" "$DEST/$f"
done

SUBJECT=$(openssl x509 -in "$DEST/cert.pem" -noout -subject | sed 's/^subject= *//')
UNTIL=$(openssl x509 -in "$DEST/cert.pem" -noout -enddate | sed 's/^notAfter=//')
say "Installed a Docker client certificate for $SUBJECT, valid until $UNTIL:"
say "  $DEST/ca.pem, $DEST/cert.pem, $DEST/key.pem (the private key was generated here)"
say ''
say 'Point the docker CLI at your Defender, then use docker as usual:'
say '  export DOCKER_HOST=tcp://<your Defender address>:9998 DOCKER_TLS_VERIFY=1'
if [ -n "\${DOCKER_CERT_PATH:-}" ]; then
  say "  export DOCKER_CERT_PATH=$DEST"
fi
say '  docker ps'
`;
}
