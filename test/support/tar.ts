/**
 * The smallest tar that Docker's archive endpoints take and give: one regular file (`docker cp` both ways in tests and
 * benchmarks), without a tar dependency.
 */

/** A ustar header for one regular file of `size` bytes. */
export function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\u000000', 257, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** A whole tar holding one file, `name`, with `data` in it. */
export function tarOf(name: string, data: Buffer): Buffer {
  return Buffer.concat([tarHeader(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512), Buffer.alloc(1024)]);
}

/** The content of the first regular file in a tar (what dockerd's GET …/archive sends), past any PAX entries. */
export function fileInTar(tar: Buffer): Buffer {
  for (let at = 0; at + 512 <= tar.length; ) {
    const size = parseInt(tar.toString('latin1', at + 124, at + 136).replace(/\0.*$/, '').trim(), 8);
    const type = tar.toString('latin1', at + 156, at + 157);
    if (type === '0' || type === '\0') return tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error('no regular file in the tar');
}
