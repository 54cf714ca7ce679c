/**
 * `custos bump`: raise the fee of a withdrawal that was broadcast but is not
 * mined (issue 13, BIP 125 replace-by-fee).
 *
 * The bump is built and signed here, on the requester's device, over the
 * intent's digest this client computes itself from the intent the
 * coordinator shows (a coordinator that showed another intent gets a bump
 * for the one it showed, which names a digest no signer signed for). It asks
 * for a fee rate; the coordinator builds the replacement and every signer
 * checks it against what it signed: the same payees, an input of the
 * original, the fee under the caps and no more than the rate asked.
 */
import { randomBytes } from 'node:crypto';
import {
  type Bump,
  bumpDigest,
  bump as bumpSchema,
  CustosError,
  intentDigest,
  lifetimesOf,
  MAX_BUMP_FEE_RATE,
  policiesInForce,
  signDigest,
  toHex,
} from '@custos/core';
import { COMMON_HELP, type Command } from '../command.js';
import { openSession } from '../context.js';
import { toJson, UsageError } from '../output.js';
import { resolveIntentId } from './intents.js';

/** A bump is a request for now: it lives an hour at most (less if the policy's intent lifetime is shorter). */
const BUMP_LIFETIME_MS = 3_600_000;

export const bumpCommand: Command = {
  name: 'bump',
  summary: 'raise the fee of your broadcast, unconfirmed Bitcoin withdrawal (replace-by-fee)',
  help: `custos bump <intent id> --fee-rate <sat/vB> [--as <profile>] [--json]

Signs a fee bump of the intent on this device (the intent's requester only)
and sends it. The coordinator builds a replacement that spends the same coins
and pays the same outputs, taking the higher fee from the change, and the
signers that signed the withdrawal sign it only if it replaces what they
signed (same payees, an input of the original: at most one can confirm) and
its fee is under the policy's caps and no more than the rate asked. The
amount is not counted again against the limits.

Refused with NOT_A_REPLACEMENT when the withdrawal is confirmed or the rate
does not beat the current transaction's, FEE_TOO_HIGH over the caps,
INSUFFICIENT_FUNDS when the original pays no change to take the fee from,
CONFLICT before it is broadcast or while another bump is being signed.
\`custos status\` shows each bumped withdrawal: the transaction replaced and
the replacement.

Options:
  --fee-rate <sat/vB>  the replacement's fee rate, 1 to ${MAX_BUMP_FEE_RATE}

Example:
  custos bump 5d0c3a1e --fee-rate 25 --as requester-1
${COMMON_HELP}`,
  options: { 'fee-rate': { type: 'string' } },
  positionals: 1,
  async run(ctx, args) {
    const idText = args.positional(0, 'the intent id');
    const rateText = args.str('fee-rate');
    if (rateText === undefined) throw new UsageError('--fee-rate <sat/vB> is required');
    if (!/^[1-9][0-9]{0,5}$/.test(rateText) || BigInt(rateText) > MAX_BUMP_FEE_RATE) {
      throw new UsageError(`--fee-rate is a whole number of sat/vB from 1 to ${MAX_BUMP_FEE_RATE}`);
    }
    const s = await openSession(ctx, args);
    const { state } = await s.governance();
    const id = await resolveIntentId(s, idText);
    const view = await s.client.intent(id);
    // The digest signed is the one computed here from the intent shown, never the coordinator's id.
    const digest = intentDigest(view.intent.intent);
    if (digest !== id) {
      throw new CustosError(
        'INTENT_SIGNATURE_INVALID',
        'the coordinator shows an intent whose digest is not its id',
      );
    }
    if (view.intent.intent.requester !== s.identity.member) {
      throw new CustosError(
        'NOT_AUTHORIZED',
        `only ${view.intent.intent.requester}, who requested this withdrawal, may bump its fee; nothing was signed`,
      );
    }
    const now = ctx.now();
    const lifetime = Math.min(BUMP_LIFETIME_MS, lifetimesOf(policiesInForce(state, now)).intentMs);
    const body: Bump = bumpSchema.parse({
      v: 1,
      org: state.org,
      intent: digest,
      feeRate: rateText,
      requester: s.identity.member,
      device: s.identity.device,
      nonce: toHex(randomBytes(16)),
      createdAt: now,
      expiresAt: now + lifetime,
    });
    const signed = { bump: body, signature: signDigest(s.identity.secretKey, bumpDigest(body)) };
    const answer = await s.client.postBump(id, signed);
    if (args.bool('json')) {
      ctx.io.out(toJson({ intent: id, feeRate: rateText, replacing: view.txid, ...answer }));
      return 0;
    }
    ctx.io.out(
      `bump ${answer.id.slice(0, 12)} at ${rateText} sat/vB: replacement ${answer.txid} (fee ${answer.fee} sat) ${answer.status}\n`,
    );
    if (view.txid !== null) ctx.io.out(`replaces   ${view.txid}\n`);
    return 0;
  },
};
