/**
 * `custos demo attacks`, THREATS 28-29 (issue 9): Bybit, WazirX and Radiant
 * played against the real signer-2 process of `custos dev`.
 *
 * How it is honest: in each of these thefts the signers saw a routine
 * transfer while what they were handed to sign was something else. Here the
 * attacker controls what reaches signer-2 (the relay in front of it plays a
 * hostile coordinator): it takes a real, properly signed and approved intent
 * for 1 USDT to the address book, and hands signer-2 a job for it whose
 * SafeTx is the attacker's: Bybit's DELEGATECALL to the trojan, WazirX's call
 * to the Safe itself (an owner added, threshold 1), Radiant's
 * transferOwnership of a contract the Safe owns. The real signer process,
 * with its own keys, ledger and node, decides; its signed receipt comes back
 * to the attacker, who keeps it (the coordinator never sees the job).
 * Nothing is simulated: a signature would be a real owner signature.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  type Approval,
  approvalDigest,
  fromHex,
  type Intent,
  intentDigest,
  intent as intentSchema,
  type JobSafeTx,
  receiptDigest,
  type SignerJob,
  type SignerResult,
  signDigest,
  signerResult,
  toHex,
  verifyEd25519,
} from '@custos/core';
import { encodeErc20Transfer, ZERO_ADDRESS } from '@custos/evm';
import { encodeFunctionData, getAddress, parseAbi } from 'viem';
import type { CustosClient } from '../client.js';
import type { Context } from '../context.js';
import type { DevFolder, DevState } from '../dev/state.js';
import type { DeviceIdentity } from '../device.js';

export interface EvmDemo {
  readonly ctx: Context;
  readonly folder: DevFolder;
  readonly genesis: string;
  readonly safe: NonNullable<DevState['safe']>;
  readonly requester: DeviceIdentity;
  readonly approver: DeviceIdentity;
  readonly asApprover: CustosClient;
}

export interface EvmOutcome {
  readonly threat: string;
  readonly title: string;
  readonly attack: string;
  readonly expected: string;
  readonly got: string;
  readonly nothing: string;
  readonly audit: string;
  readonly ok: boolean;
}

const SAFE_ADMIN_ABI = parseAbi(['function addOwnerWithThreshold(address owner, uint256 _threshold)']);
const OWNABLE_ABI = parseAbi(['function transferOwnership(address newOwner)']);
const RESULT_WAIT_MS = 60_000;

/** The three replays, in the order of the incidents' size. */
export async function evmAttacks(d: EvmDemo): Promise<EvmOutcome[]> {
  const s = d.safe;
  if (s.trojan === undefined || s.ownable === undefined || s.attacker === undefined) return [];
  const attacker = getAddress(s.attacker);
  const safe = getAddress(s.address);
  return [
    await replay(d, {
      threat: '28',
      name: 'bybit',
      title: "Bybit (2025): a DELEGATECALL to a trojan whose transfer() rewrites the Safe's implementation",
      attack: `operation 1 (DELEGATECALL) to ${s.trojan}, data transfer(${attacker}, 0)`,
      expected: ['OPERATION_FORBIDDEN'],
      safeTx: (honest) => ({
        ...honest,
        to: getAddress(s.trojan as string) as JobSafeTx['to'],
        value: '0',
        data: encodeErc20Transfer(attacker, 0n).toLowerCase(),
        operation: 1,
      }),
    }),
    await replay(d, {
      threat: '28',
      name: 'wazirx',
      title: 'WazirX (2024): a payload that takes over the Safe (a call to the Safe itself)',
      attack: `a call to the Safe ${safe}: addOwnerWithThreshold(${attacker}, 1)`,
      expected: ['OPERATION_FORBIDDEN'],
      safeTx: (honest) => ({
        ...honest,
        to: safe as JobSafeTx['to'],
        value: '0',
        data: encodeFunctionData({ abi: SAFE_ADMIN_ABI, args: [attacker, 1n] }).toLowerCase(),
        operation: 0,
      }),
    }),
    await replay(d, {
      threat: '29',
      name: 'radiant',
      title: 'Radiant (2024): transferOwnership of a contract the Safe owns, shown as a routine transaction',
      attack: `a call to ${s.ownable} (owned by the Safe): transferOwnership(${attacker})`,
      expected: ['OPERATION_FORBIDDEN', 'CALLDATA_MISMATCH'],
      safeTx: (honest) => ({
        ...honest,
        to: getAddress(s.ownable as string) as JobSafeTx['to'],
        value: '0',
        data: encodeFunctionData({ abi: OWNABLE_ABI, args: [attacker] }).toLowerCase(),
        operation: 0,
      }),
    }),
  ];
}

async function replay(
  d: EvmDemo,
  a: {
    threat: string;
    name: string;
    title: string;
    attack: string;
    expected: readonly string[];
    safeTx: (honest: JobSafeTx) => JobSafeTx;
  },
): Promise<EvmOutcome> {
  const now = d.ctx.now();
  // A real intent for 1 USDT to the address book, signed by the requester and approved: what the signer sees.
  const body: Intent = intentSchema.parse({
    v: 1,
    org: d.genesis,
    wallet: d.safe.wallet,
    chain: `eip155:${d.safe.chainId}`,
    asset: 'usdt',
    amount: '1000000',
    to: getAddress(d.safe.payee),
    requester: d.requester.member,
    device: d.requester.device,
    nonce: toHex(randomBytes(16)),
    createdAt: now,
    expiresAt: now + 3_600_000,
    memo: `custos demo attacks: ${a.name}`,
  });
  const intent = { intent: body, signature: signDigest(d.requester.secretKey, intentDigest(body)) };
  const approval: Approval = {
    v: 1,
    intent: intentDigest(body),
    approver: d.approver.member,
    device: d.approver.device,
    decision: 'approve',
    at: now,
    expiresAt: now + 3_600_000,
  };
  const approvals = [{ approval, signature: signDigest(d.approver.secretKey, approvalDigest(approval)) }];
  // What an honest coordinator would have proposed: 1 USDT to the payee (the nonce is the attacker's guess).
  const honest: JobSafeTx = {
    safe: getAddress(d.safe.address) as JobSafeTx['safe'],
    chainId: String(d.safe.chainId),
    to: getAddress(d.safe.payee) as JobSafeTx['to'],
    value: '0',
    data: encodeErc20Transfer(getAddress(d.safe.payee), 1_000_000n).toLowerCase(),
    operation: 0,
    safeTxGas: '0',
    baseGas: '0',
    gasPrice: '0',
    gasToken: ZERO_ADDRESS as JobSafeTx['gasToken'],
    refundReceiver: ZERO_ADDRESS as JobSafeTx['refundReceiver'],
    nonce: '0',
  };
  const head = await d.asApprover.governanceHead();
  if (head === null) throw new Error('the coordinator has no governance');
  const job: SignerJob = {
    v: 1,
    id: `attack-${a.name}-${toHex(randomBytes(4))}`,
    signer: 'signer-2',
    intent,
    approvals,
    governance: { seq: head.seq, digest: head.digest },
    safeTx: a.safeTx(honest),
  };
  const resultFile = d.folder.path('relay-result.json');
  const injectFile = d.folder.path('relay-inject.json');
  rmSync(resultFile, { force: true });
  writeFileSync(injectFile, JSON.stringify({ job }), { mode: 0o600 });
  let result: SignerResult | null = null;
  try {
    const deadline = Date.now() + RESULT_WAIT_MS;
    while (result === null && Date.now() < deadline) {
      if (existsSync(resultFile)) {
        try {
          const parsed = signerResult.parse(JSON.parse(readFileSync(resultFile, 'utf8')));
          if (parsed.receipt.job === job.id) result = parsed;
        } catch {
          // Half-written: read again.
        }
      }
      if (result === null) await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    rmSync(injectFile, { force: true });
    rmSync(resultFile, { force: true });
  }
  if (result === null) {
    return {
      threat: a.threat,
      title: a.title,
      attack: a.attack,
      expected: a.expected.join(' or '),
      got: 'signer-2 never answered the injected job',
      nothing: 'unknown',
      audit: 'none',
      ok: false,
    };
  }
  const r = result.receipt;
  const key = (await d.asApprover.governanceEntries(-1, 0))[0]?.entry;
  const signerKey =
    key?.kind === 'genesis'
      ? (key.body as { signers: { id: string; publicKey: string }[] }).signers.find(
          (x) => x.id === 'signer-2',
        )?.publicKey
      : undefined;
  const genuine =
    signerKey !== undefined && verifyEd25519(signerKey as never, fromHex(receiptDigest(r)), result.signature);
  const refused = r.outcome === 'refused' && r.code !== null && r.code !== undefined;
  const critical = result.alert?.severity === 'critical';
  return {
    threat: a.threat,
    title: a.title,
    attack: `a hostile coordinator hands signer-2 a job for a real approved intent (1 USDT to the address book) with ${a.attack}`,
    expected: a.expected.join(' or '),
    got: refused
      ? `signer-2 refused: ${r.code}${critical ? ' (critical alert)' : ''}`
      : `signer-2 ${r.outcome}`,
    nothing:
      result.safeSignature === undefined
        ? 'no owner signature left signer-2; the Safe nonce is untouched'
        : 'AN OWNER SIGNATURE LEFT THE SIGNER',
    audit: `signer-2's receipt ${genuine ? 'verifies with its governed identity key' : 'DOES NOT VERIFY'}; the refusal is in signer-2's own ledger`,
    ok:
      refused &&
      critical &&
      genuine &&
      result.safeSignature === undefined &&
      a.expected.includes(r.code as string),
  };
}
