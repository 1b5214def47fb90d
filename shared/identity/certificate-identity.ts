/**
 * Who is calling, read from a client certificate — the one encoding the Console issues and the Defender reads.
 *
 * - The subject's single CN is the user name. No CN, an empty CN, or more than one CN → rejected.
 * - Each OU attribute of the subject is one group (in subject order, duplicates dropped). No OU → no groups.
 * - Names and groups may not contain control characters and are at most 256 characters; anything else is
 *   rejected rather than cleaned, because a cleaned name could collide with someone else's.
 * - A user certificate's subject has only CN and OU attributes. Any other attribute (a Defender's certificate
 *   carries `O=Drawbridge Defender`) means it is not a user certificate, and it is refused as one: a Defender's
 *   own client certificate must never act as a user on another Defender.
 * - Chain, validity and revocation are checked by the TLS layer before this runs; this only reads the subject.
 */
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata';
import { AttributeTypeAndValue, AttributeValue, Name as AsnName, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import { Name, X509Certificate } from '@peculiar/x509';

export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
}

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

const MAX_LENGTH = 256;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkValue(kind: string, value: string): string {
  if (value.length === 0) throw new IdentityError(`the certificate's ${kind} is empty`);
  if (value.length > MAX_LENGTH) throw new IdentityError(`the certificate's ${kind} is longer than ${MAX_LENGTH} characters`);
  if (CONTROL.test(value)) throw new IdentityError(`the certificate's ${kind} contains control characters`);
  return value;
}

/** Reads the identity from a subject name (DER or a parsed Name). */
/** The organisation attribute that marks a Defender's certificate (see certificate-profiles.ts). */
export const DEFENDER_ORGANIZATION = 'Drawbridge Defender';
/**
 * The organisation attribute of the Console's own TLS certificate, and of no other: the same CA signs Defenders'
 * server certificates with names their enroller chose, so a name check alone cannot tell the Console from one.
 */
export const CONSOLE_ORGANIZATION = 'Drawbridge Console';
/** Whether a subject's organisation attributes (one or a list, as Node's PeerCertificate gives them) carry CONSOLE_ORGANIZATION. */
export function carriesConsoleMark(organizations: string | readonly string[] | undefined): boolean {
  return (typeof organizations === 'string' ? [organizations] : (organizations ?? [])).includes(CONSOLE_ORGANIZATION);
}
/** The common name of the Console's CA (a client that trusts this CA requires CONSOLE_ORGANIZATION of the Console). */
export const CONSOLE_CA_COMMON_NAME = 'Drawbridge Console CA';

export function identityFromSubject(subject: Name): Identity {
  const other = subject.toJSON().flatMap((rdn) => Object.keys(rdn)).filter((type) => type !== 'CN' && type !== 'OU');
  if (other.length > 0) {
    throw new IdentityError(
      subject.getField('O').includes(DEFENDER_ORGANIZATION)
        ? "this is a Defender's certificate, not a user's"
        : `the certificate's subject has attributes other than CN and OU (${[...new Set(other)].join(', ')}); it is not a Drawbridge user certificate`,
    );
  }
  const cns = subject.getField('CN');
  if (cns.length !== 1) {
    throw new IdentityError(cns.length === 0 ? 'the certificate has no CN (user name)' : 'the certificate has more than one CN');
  }
  const user = checkValue('CN (user name)', cns[0]!);
  const groups = [...new Set(subject.getField('OU').map((g) => checkValue('OU (group)', g)))];
  return { user, groups };
}

/** Reads the identity from a DER-encoded certificate. */
export function identityFromCertificate(der: Uint8Array): Identity {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    throw new IdentityError('the client certificate could not be parsed');
  }
  return identityFromSubject(cert.subjectName);
}

const ATTRIBUTE_OIDS = { CN: '2.5.4.3', OU: '2.5.4.11', O: '2.5.4.10' } as const;

/**
 * A subject name with one attribute per RDN, in order. Values go in as explicit UTF8Strings: a DN string form
 * would interpret DN syntax in them (a leading '#' as hex bytes, quotes as delimiters), so a name like
 * 'x"admin"' would turn into 'admin'.
 */
export function utf8Name(attributes: ReadonlyArray<readonly [keyof typeof ATTRIBUTE_OIDS, string]>): AsnName {
  return new AsnName(attributes.map(([type, value]) => new RelativeDistinguishedName([
    new AttributeTypeAndValue({ type: ATTRIBUTE_OIDS[type], value: new AttributeValue({ utf8String: value }) }),
  ])));
}

/** The subject a certificate for this identity must carry (the CA encodes it; identityFromSubject reads it back). */
export function subjectForIdentity(identity: Identity): AsnName {
  checkValue('CN (user name)', identity.user);
  const groups = [...new Set(identity.groups)];
  return utf8Name([['CN', identity.user], ...groups.map((g) => ['OU', checkValue('OU (group)', g)] as const)]);
}
