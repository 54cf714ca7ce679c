import { it } from 'vitest';
import { parseDescriptor, descriptorChecksum } from '../src/index.js';
const TV1_0H = 'xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw';
const TV3_0H = 'xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y';
const TV4_0H = 'xpub69AUMk3qDBi3uW1sXgjCmVjJ2G6WQoYSnNHyzkmdCHEhSZ4tBok37xfFEqHd2AddP56Tqp4o56AePAgCjYdvpW2PU2jbUPFKsav5ut6Ch1m';
const B = `wsh(sortedmulti(2,[3442193e/0h]${TV1_0H}/0/*,[41d63b50/0h]${TV3_0H}/0/*,[ad85d955/0h]${TV4_0H}/0/*))`;
it('x', () => {
  for (const t of [B.replace(TV3_0H, TV1_0H).replace('41d63b50', '3442193e'), B.replace('[3442193e/0h]', '[3442193e/0h/1]'), B.replace('[3442193e/0h]', '[3442193e/1h]'), B.replace(TV1_0H, `${TV1_0H.slice(0, -1)}x`), B.replace('(02,', '(02,'), B.replace('(2,', '(02,'), B.replace('/0/*', "/0/*'")]) {
    const r = parseDescriptor(t, 'mainnet'); console.log(r.ok ? 'OK' : r.code + ' ' + r.message);
  }
});
