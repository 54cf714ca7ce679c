/**
 * Client device keys: one Ed25519 key per member device, sealed under a
 * password at rest (docs/architecture.md "Storage": scrypt, XChaCha20-Poly1305, through
 * core sealed.ts). The public half is bound to the box as associated data,
 * so a key file whose member, device or public key was swapped does not open.
 *
 * The secret lives in memory only while a command runs; it signs intents,
 * approvals, governance entries and every HTTP request (RFC 9421) and is
 * never printed.
 *
 * A service requester (issue 13: an exchange backend) keeps the same file on
 * its server and opens it once at start with {@link openSealedDeviceKey},
 * which gives core's DeviceSigner: the one interface an HSM (PKCS#11) or a
 * cloud KMS adapter implements in its place (docs/api.md "Service client").
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CustosError,
  type DeviceSigner,
  decode,
  type EntrySigner,
  ed25519PublicKey,
  fromHex,
  generateEd25519,
  type Hex,
  type Infer,
  memoryDeviceSigner,
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
  const pub = await writeSealedDeviceKey(
    join(dir, 'device.key'),
    member,
    device,
    password,
    opts.logN === undefined ? {} : { logN: opts.logN },
  );
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

/**
 * Makes a new Ed25519 device key and writes it to `path`, sealed under
 * `password` (owner-only file mode), as `custos keys new` does. Returns the
 * public half, what governance registers (`device.add`, or `member.add` for
 * a new service member).
 */
export async function writeSealedDeviceKey(
  path: string,
  member: string,
  device: string,
  password: string,
  opts: { logN?: number } = {},
): Promise<{ member: string; device: string; publicKey: Hex }> {
  id.parse(member, 'member');
  id.parse(device, 'device');
  if (existsSync(path)) throw new CustosError('CONFLICT', `${path} already exists`);
  const pair = generateEd25519();
  const pub = devicePublic.parse({ member, device, publicKey: pair.publicKey });
  const box = await sealWithPassword(
    { secretKey: toHex(pair.secretKey) },
    password,
    pub,
    opts.logN === undefined ? {} : { logN: opts.logN },
  );
  pair.secretKey.fill(0);
  writeJson(path, { v: 1, kind: 'custos-device-key', public: pub, box });
  return { member, device, publicKey: pub.publicKey as Hex };
}

/**
 * Opens a sealed device key file: its public half (member, device, public
 * key) is bound to the box, so a file whose names or key were swapped does
 * not open, and a wrong password is BAD_PASSWORD, the same answer.
 */
async function openDeviceKeyFile(
  path: string,
  password: string,
): Promise<{ member: string; device: string; publicKey: Hex; secretKey: Uint8Array }> {
  if (!existsSync(path)) throw new CustosError('NOT_FOUND', `no device key file at ${path}`);
  const file: Infer<typeof deviceKeyFile> = decode(deviceKeyFile, readFileSync(path));
  const secret = await openWithPassword(file.box, password, file.public, deviceSecret);
  const secretKey = fromHex(secret.secretKey);
  if (ed25519PublicKey(secretKey) !== file.public.publicKey) {
    secretKey.fill(0);
    throw new CustosError('BAD_PASSWORD', 'the key file does not match its public key');
  }
  return {
    member: file.public.member,
    device: file.public.device,
    publicKey: file.public.publicKey as Hex,
    secretKey,
  };
}

/**
 * A service requester's device key (issue 13): the sealed key file at
 * `path`, opened once with `password`, as a DeviceSigner for the service
 * client (`new CustosClient({ baseUrl, signer })`). The secret stays in this
 * process's memory from here on; an HSM or KMS adapter implementing
 * DeviceSigner keeps it out of the process altogether.
 *
 * @example
 * const signer = await openSealedDeviceKey('/etc/custos/backend.key', readFileSync('/run/secrets/custos', 'utf8').trim());
 */
export async function openSealedDeviceKey(path: string, password: string): Promise<DeviceSigner> {
  const opened = await openDeviceKeyFile(path, password);
  const signer = memoryDeviceSigner(opened);
  opened.secretKey.fill(0);
  return signer;
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
