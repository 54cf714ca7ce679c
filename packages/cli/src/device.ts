/**
 * Client device keys: one Ed25519 key per member device, sealed under a
 * password at rest (docs/architecture.md "Storage": scrypt, XChaCha20-Poly1305, through
 * core sealed.ts). The public half is bound to the box as associated data,
 * so a key file whose member, device or public key was swapped does not open.
 *
 * The secret lives in memory only while a command runs; it signs intents,
 * approvals, governance entries and every HTTP request (RFC 9421) and is
 * never printed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CustosError,
  decode,
  type EntrySigner,
  ed25519PublicKey,
  fromHex,
  generateEd25519,
  type Hex,
  type Infer,
  openWithPassword,
  primitives,
  schema,
  sealedBox,
  sealWithPassword,
  toHex,
} from '@custos/core';
import { type Home, type ProfileFile, writeJson } from './home.js';
import { readPassword } from './password.js';

const { id, hexBytes } = primitives;
const { literal, object } = schema;

const devicePublic = object({ member: id, device: id, publicKey: hexBytes(32) });
export const deviceKeyFile = object({
  v: literal(1),
  kind: literal('custos-device-key'),
  public: devicePublic,
  box: sealedBox,
});
const deviceSecret = object({ secretKey: hexBytes(32) });

/** An unlocked device: what signs. */
export interface DeviceIdentity extends EntrySigner {
  readonly publicKey: Hex;
  readonly profile: string;
}

export async function createDeviceKey(
  home: Home,
  profile: string,
  member: string,
  device: string,
  password: string,
  opts: { logN?: number; passwordFile?: string } = {},
): Promise<ProfileFile> {
  id.parse(member, 'member');
  id.parse(device, 'device');
  const dir = home.profileDir(profile);
  if (existsSync(join(dir, 'device.key'))) {
    throw new CustosError('CONFLICT', `profile ${profile} already has a device key (${dir})`);
  }
  const pair = generateEd25519();
  const pub = devicePublic.parse({ member, device, publicKey: pair.publicKey });
  const box = await sealWithPassword(
    { secretKey: toHex(pair.secretKey) },
    password,
    pub,
    opts.logN === undefined ? {} : { logN: opts.logN },
  );
  pair.secretKey.fill(0);
  writeJson(join(dir, 'device.key'), { v: 1, kind: 'custos-device-key', public: pub, box });
  const file: ProfileFile = {
    v: 1,
    member,
    device,
    publicKey: pub.publicKey,
    ...(opts.passwordFile === undefined ? {} : { passwordFile: opts.passwordFile }),
  };
  writeJson(join(dir, 'profile.json'), file);
  return file;
}

export async function unlockDevice(
  home: Home,
  profile: string,
  opts: { passwordFile?: string | undefined; env: Readonly<Record<string, string | undefined>> },
): Promise<DeviceIdentity> {
  const info = home.readProfile(profile);
  const path = join(home.profileDir(profile), 'device.key');
  if (!existsSync(path)) throw new CustosError('NOT_FOUND', `profile ${profile} has no device key`);
  const file: Infer<typeof deviceKeyFile> = decode(deviceKeyFile, readFileSync(path));
  if (file.public.member !== info.member || file.public.device !== info.device) {
    throw new CustosError(
      'INVALID_VALUE',
      `profile ${profile}: profile.json and device.key name different devices`,
    );
  }
  const password = await readPassword({
    passwordFile: opts.passwordFile,
    profilePasswordFile: info.passwordFile,
    env: opts.env,
    prompt: `password for ${info.member}/${info.device}`,
  });
  const secret = await openWithPassword(file.box, password, file.public, deviceSecret);
  const secretKey = fromHex(secret.secretKey);
  if (ed25519PublicKey(secretKey) !== file.public.publicKey) {
    throw new CustosError('BAD_PASSWORD', 'the key file does not match its public key');
  }
  return {
    profile,
    member: info.member,
    device: info.device,
    secretKey,
    publicKey: file.public.publicKey as Hex,
  };
}
