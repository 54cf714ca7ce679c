/**
 * Flow steps 3-5 for a Safe (issue 9): an approved intent on an `evm-safe`
 * wallet becomes a SafeTx proposal and one job per owner-signer; the owners'
 * signatures are checked and packed; an executor account sends
 * `execTransaction`; the execution is followed to its confirmations.
 *
 * What the coordinator may and may not do here is what it may do for
 * Bitcoin: it proposes, it never decides. The proposal is the one plain
 * transfer `buildTransferSafeTx` makes for the intent, and each signer
 * builds the same SafeTx itself and signs only the hash it computed
 * (THREATS 28-29); a proposal the coordinator got wrong is refused there.
 * The executor key configured here only pays gas: execTransaction moves
 * nothing the owners did not sign, whoever sends it.
 *
 * The Safe nonce: a Safe executes in nonce order, so a proposal takes the
 * lowest nonce at or above the on-chain one that no live proposal holds, as
 * rows in the database (db/evm-store.ts), so coordinators sharing it agree.
 *
 * Checks on each signature (as for Bitcoin, the receipt's identity signature
 * was verified by Results.accept before this): the receipt names the
 * safeTxHash the coordinator computed, and `recoverSafeSigner` over that hash
 * gives the signer's governed owner address. A signature that does not is a
 * BAD_SIGNATURE alert and does not count.
 *
 * Noticing what Custos did not do: a Safe nonce consumed by a transaction
 * Custos did not execute (the nonce moved, and no ExecutionSuccess carries
 * our hash) refuses the intent with SAFE_NONCE_REUSED and a critical alert;
 * any ExecutionSuccess of a governed Safe whose hash is no proposal of ours
 * is a NO_APPROVED_INTENT critical alert (a key used outside Custos).
 *
 * Audit: the same events as Bitcoin, with the safeTxHash (no 0x) as the
 * digest: transaction.built, signing.queued, signing.signed (Results),
 * intent.signed, transaction.broadcast, transaction.confirmed. The intent's
 * txid is the safeTxHash too, as a signer's receipt names it; the hash of
 * the Ethereum transaction that executed it is on the proposal's row and in
 * the `transaction.broadcast` webhook (`executionTxHash`).
 */
import {
  CustosError,
  type Digest,
  type ErrorCode,
  type EvmSafeWallet,
  evmChainId,
  type GovernanceState,
  type JobSafeTx,
  type SignerJob,
  type SignerResult,
  signerActive,
} from '@custos/core';
import {
  type Address,
  buildTransferSafeTx,
  encodeExecTransaction,
  packSafeSignatures,
  parseEvmAddress,
  recoverSafeSigner,
  SAFE_ABI,
  type SafeTx,
  safeTxHash,
  sameAddress,
} from '@custos/evm';
import { evmClient } from '@custos/evm/state';
import {
  BaseError,
  createWalletClient,
  erc20Abi,
  type Hex,
  http,
  type PublicClient,
  parseAbiItem,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { WalletSummary } from '../contracts.js';
import type { SafeTxRecord } from '../db/evm-store.js';
import type { IntentRecord, JobRecord } from '../db/repository.js';
import { approvalsOf } from './build.js';
import { auditEvent, auditRecord, type Context, jobId, notify, refuseIntent } from './context.js';
import { errorFields } from './support.js';

/** One EVM chain the coordinator works on. */
export interface EvmChainConfig {
  /** The coordinator's own node (availability only: signers read the Safe's state from theirs). */
  readonly rpcUrl: string;
  /** 0x and 32 bytes: the account that sends execTransaction and pays its gas; it owns nothing in a Safe. */
  readonly executorKey: Hex;
  /** Confirmations after which an execution is `confirmed`; default 1 on 31337 and 1337 (local chains), else 12. */
  readonly confirmations?: number;
}

/** By chain id in decimal (`"1"`, `"31337"`). */
export type EvmConfig = Readonly<Record<string, EvmChainConfig>>;

const EXECUTION_SUCCESS = parseAbiItem('event ExecutionSuccess(bytes32 indexed txHash, uint256 payment)');
/** Blocks read per getLogs call when following a Safe's executions. */
const LOG_RANGE = 2000n;

interface Node {
  readonly chainId: number;
  readonly client: PublicClient;
  readonly wallet: WalletClient;
  readonly executor: Address;
  readonly target: number;
}

/** Checks the configuration of every chain; throws INVALID_VALUE with the chain named. */
export function checkEvmConfig(config: EvmConfig): void {
  for (const [id, c] of Object.entries(config)) {
    if (!/^[1-9][0-9]{0,15}$/.test(id) || !Number.isSafeInteger(Number(id))) {
      throw new CustosError('INVALID_VALUE', `evm: "${id}" is not a chain id (a decimal number)`);
    }
    if (typeof c.rpcUrl !== 'string' || !/^https?:\/\//.test(c.rpcUrl)) {
      throw new CustosError('INVALID_VALUE', `evm.${id}.rpcUrl must be an http(s) URL`);
    }
    if (typeof c.executorKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(c.executorKey)) {
      // The key itself is never put in a message.
      throw new CustosError('INVALID_VALUE', `evm.${id}.executorKey must be 0x and 32 bytes of hex`);
    }
    if (c.confirmations !== undefined && (!Number.isSafeInteger(c.confirmations) || c.confirmations < 1)) {
      throw new CustosError('INVALID_VALUE', `evm.${id}.confirmations must be a positive integer`);
    }
  }
}

/** The Safe wallet of an intent, or null when its wallet is not a Safe (or left governance). */
export async function safeWalletOf(ctx: Context, rec: IntentRecord): Promise<EvmSafeWallet | null> {
  const wallet = (await ctx.governance.current()).wallets.get(rec.signed.intent.wallet);
  return wallet?.kind === 'evm-safe' ? wallet : null;
}

/** A safeTxHash as an audit digest: 64 lower-case hex digits, no 0x. */
function digestOf(hash: string): Digest {
  return hash.slice(2).toLowerCase() as Digest;
}

export class EvmSafes {
  readonly #nodes = new Map<string, Node>();
  /** The next block to read ExecutionSuccess logs from, per chain and Safe (this process). */
  readonly #scanned = new Map<string, bigint>();

  constructor(config: EvmConfig = {}) {
    checkEvmConfig(config);
    for (const [id, c] of Object.entries(config)) {
      const chainId = Number(id);
      const account = privateKeyToAccount(c.executorKey.toLowerCase() as Hex);
      const chain = {
        id: chainId,
        name: `eip155:${id}`,
        nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        rpcUrls: { default: { http: [c.rpcUrl] } },
      } as const;
      this.#nodes.set(`eip155:${id}`, {
        chainId,
        client: evmClient(c.rpcUrl),
        wallet: createWalletClient({
          account,
          chain,
          transport: http(c.rpcUrl, { retryCount: 0, timeout: 30_000 }),
        }),
        executor: account.address,
        target: c.confirmations ?? (chainId === 31337 || chainId === 1337 ? 1 : 12),
      });
    }
  }

  /** The chains configured, as CAIP-2 ids. */
  get chains(): readonly string[] {
    return [...this.#nodes.keys()];
  }

  #node(chain: string): Node {
    const node = this.#nodes.get(chain);
    if (node === undefined) {
      // Not a decision about the intent: the operator has not configured this chain yet.
      throw new CustosError(
        'UNAVAILABLE',
        `no EVM node is configured for ${chain} (evm.<chainId> in the config)`,
      );
    }
    return node;
  }

  // ------------------------------------------------------------------ build

  /** approved -> signing: the proposal (nonce allocated in the database) and one job per owner-signer. */
  async build(ctx: Context, rec: IntentRecord, state: GovernanceState, wallet: EvmSafeWallet): Promise<void> {
    const id = rec.id;
    const intent = rec.signed.intent;
    const chainId = evmChainId(wallet.chain);
    const asset = state.assets.get(intent.asset)?.value;
    if (asset === undefined || asset.chain !== wallet.chain) {
      await refuseIntent(
        ctx,
        id,
        'approved',
        'UNKNOWN_ASSET',
        `${intent.asset} is not registered on ${wallet.chain}`,
      );
      return;
    }
    const to = parseEvmAddress(intent.to);
    if (!to.ok) {
      await refuseIntent(ctx, id, 'approved', to.code as ErrorCode, to.message);
      return;
    }
    if (chainId === undefined) {
      await refuseIntent(ctx, id, 'approved', 'WRONG_CHAIN', `${wallet.chain} is not an eip155 chain`);
      return;
    }
    const node = this.#node(wallet.chain);
    const safe = wallet.address as Address;
    const onChainNonce = await this.#nonce(node, safe);
    const row = await ctx.store.evm.allocate({
      intent: id,
      chain: wallet.chain,
      safe,
      onChainNonce,
      build: (nonce) => {
        const tx = buildTransferSafeTx({
          asset:
            asset.kind === 'native'
              ? { kind: 'native' }
              : { kind: 'erc20', contract: asset.contract as Address },
          to: to.value,
          amount: BigInt(intent.amount),
          nonce,
        });
        return {
          safeTx: JSON.stringify(proposalOf(safe, chainId, tx)),
          safeTxHash: safeTxHash(safe, chainId, tx),
        };
      },
    });
    const moved = await ctx.store.intents.updateStatus(id, { from: 'approved', to: 'signing' });
    if (!moved) return; // another coordinator moved it; the row is the same one (keyed by intent)
    ctx.log.info(
      { intent: id, safeTxHash: row.safeTxHash, nonce: row.nonce.toString() },
      'Safe transaction built',
    );
    await auditEvent(ctx, { event: 'transaction.built', subject: id, digest: digestOf(row.safeTxHash) });
    const signing = await ctx.store.intents.get(id);
    if (signing !== null) await this.queueJobs(ctx, signing, state, wallet, row);
  }

  /** One job per active owner-signer (attempt 1). Idempotent, as for Bitcoin. */
  async queueJobs(
    ctx: Context,
    rec: IntentRecord,
    state: GovernanceState,
    wallet: EvmSafeWallet,
    row: SafeTxRecord,
  ): Promise<void> {
    const approvals = await approvalsOf(ctx, rec.id);
    const now = ctx.clock();
    const owners = wallet.owners
      .map((o) => o.signer)
      .filter((s) => state.signers.has(s) && signerActive(state, s, now))
      .sort();
    const safeTx = JSON.parse(row.safeTx) as JobSafeTx;
    const jobs: SignerJob[] = owners.map((signer) => ({
      v: 1,
      id: jobId(rec.id, signer, 1),
      signer,
      intent: rec.signed,
      approvals,
      governance: { seq: state.seq, digest: state.head },
      safeTx,
    }));
    await ctx.store.jobs.enqueue(
      jobs,
      auditRecord(ctx, { event: 'signing.queued', subject: rec.id, digest: digestOf(row.safeTxHash) }),
    );
    for (const signer of owners) ctx.wake(signer);
  }

  // ---------------------------------------------------------------- results

  /**
   * Why a signer's `signed` result cannot count, or the owner signature it
   * carries: the receipt names our safeTxHash and the signature recovers to
   * the signer's governed owner address.
   */
  usableSignature(
    state: GovernanceState,
    wallet: EvmSafeWallet,
    row: SafeTxRecord,
    signer: string,
    result: SignerResult,
  ): { owner: Address; signature: Hex } | string {
    if ((result.receipt.txid as string | null) !== digestOf(row.safeTxHash))
      return 'the receipt names another safeTxHash';
    const sig = result.safeSignature;
    if (sig === undefined) return 'the result carries no safeSignature';
    const owner = wallet.owners.find((o) => o.signer === signer)?.address;
    if (owner === undefined) return `signer ${signer} is not an owner of Safe ${wallet.address}`;
    const governed = state.signers.get(signer)?.evmAddress;
    if (governed !== undefined && !sameAddress(governed, owner)) {
      return `signer ${signer}'s governed evmAddress is not its owner address in wallet ${wallet.id}`;
    }
    const recovered = recoverSafeSigner(row.safeTxHash as Hex, sig as Hex);
    if (!recovered.ok) return `the safeSignature does not recover: ${recovered.message}`;
    if (!sameAddress(recovered.value, owner)) {
      return `the safeSignature recovers to ${recovered.value}, not ${owner}`;
    }
    return { owner: owner as Address, signature: sig as Hex };
  }

  /** The Bitcoin path's advance for a Safe: requeue, refuse, or pack and execute. */
  async advance(ctx: Context, rec: IntentRecord, wallet: EvmSafeWallet): Promise<void> {
    const id = rec.id;
    const row = await ctx.store.evm.get(id);
    const state = await ctx.governance.current();
    if (row === null) {
      await refuseIntent(
        ctx,
        id,
        ['signing', 'signed'],
        'INTERNAL',
        'the intent has no Safe proposal stored',
      );
      return;
    }
    const jobs = await ctx.store.jobs.of(id);
    if (jobs.length === 0) {
      if (rec.status === 'signing') await this.queueJobs(ctx, rec, state, wallet, row);
      return;
    }
    const latest = new Map<string, { job: JobRecord; attempt: number }>();
    for (const job of jobs) {
      const attempt = attemptOf(job.id);
      const seen = latest.get(job.signer);
      if (seen === undefined || attempt > seen.attempt) latest.set(job.signer, { job, attempt });
    }
    const usable = new Map<string, { owner: Address; signature: Hex }>();
    const refusals: { signer: string; code: ErrorCode; message?: string }[] = [];
    let pending = 0;
    for (const [signer, { job, attempt }] of latest) {
      if (job.status !== 'done') {
        pending++;
        continue;
      }
      const result = job.result;
      if (result === null) continue; // withdrawn
      if (result.receipt.outcome === 'signed') {
        const sig = this.usableSignature(state, wallet, row, signer, result);
        if (typeof sig === 'string') refusals.push({ signer, code: 'BAD_SIGNATURE', message: sig });
        else usable.set(signer, sig);
        continue;
      }
      const code = result.receipt.code ?? 'INTERNAL';
      if (code === 'UNAVAILABLE' && attempt < ctx.opts.maxJobAttempts && rec.status === 'signing') {
        const next = { ...job.job, id: jobId(job.intent, job.signer, attempt + 1) };
        await ctx.store.jobs.enqueue(
          [next],
          auditRecord(ctx, { event: 'signing.queued', subject: id, digest: digestOf(row.safeTxHash) }),
        );
        ctx.wake(signer);
        pending++;
        continue;
      }
      refusals.push({ signer, code, ...(result.message === undefined ? {} : { message: result.message }) });
    }
    const m = wallet.threshold;
    if (usable.size >= m) {
      await this.#execute(ctx, rec, wallet, row, [...usable.values()].slice(0, m));
      return;
    }
    if (rec.status === 'signing' && usable.size + pending < m) {
      const first = refusals[0];
      await refuseIntent(
        ctx,
        id,
        'signing',
        first?.code ?? 'QUORUM_NOT_MET',
        first === undefined
          ? `fewer than ${m} owners can sign`
          : `signer ${first.signer} refused (${first.code}${first.message === undefined ? '' : `: ${first.message}`}); fewer than ${m} owners can still sign`,
      );
      await ctx.store.evm.releaseEnded();
    }
  }

  /** signing -> signed -> broadcast: pack the owners' signatures and send execTransaction. */
  async #execute(
    ctx: Context,
    rec: IntentRecord,
    wallet: EvmSafeWallet,
    row: SafeTxRecord,
    signatures: readonly { owner: Address; signature: Hex }[],
  ): Promise<void> {
    const id = rec.id;
    const digest = digestOf(row.safeTxHash);
    if (rec.status === 'signing') {
      const signed = await ctx.store.intents.updateStatus(id, {
        from: 'signing',
        to: 'signed',
        audit: auditRecord(ctx, { event: 'intent.signed', subject: id, digest }),
      });
      if (!signed) return;
      // Enough owners: the other jobs are not needed (and would use their signers' limits).
      await ctx.store.jobs.cancel(id, null);
    }
    const node = this.#node(wallet.chain);
    const safe = wallet.address as Address;
    let execHash = row.execHash as Hex | null;
    if (execHash === null) {
      const onChain = await this.#nonce(node, safe);
      if (onChain > row.nonce) {
        execHash = await this.#executedBy(node, safe, row);
        if (execHash === null) {
          await this.#nonceTaken(ctx, id, wallet, row, onChain);
          return;
        }
      } else if (onChain < row.nonce) {
        ctx.log.info(
          { intent: id, nonce: row.nonce.toString(), safeNonce: onChain.toString() },
          'Safe transaction waits for the nonces before it',
        );
        return;
      } else {
        const tx = safeTxOf(row);
        const data = encodeExecTransaction(tx, packSafeSignatures(signatures));
        try {
          execHash = await node.wallet.sendTransaction({
            account: node.wallet.account ?? null,
            chain: node.wallet.chain ?? null,
            to: safe,
            data,
          });
        } catch (err) {
          // Another coordinator may have executed it meanwhile: only a revert that is not that refuses.
          const done = await this.#executedBy(node, safe, row).catch(() => null);
          if (done !== null) {
            execHash = done;
          } else if (isRevert(err)) {
            const message = `the Safe refuses execTransaction: ${shortMessage(err)}`;
            await this.#alert(ctx, {
              subject: id,
              digest,
              code: 'CHAIN_REJECTED',
              severity: 'critical',
              message,
            });
            await refuseIntent(ctx, id, 'signed', 'CHAIN_REJECTED', message);
            await ctx.store.evm.releaseEnded();
            return;
          } else {
            throw new CustosError(
              'UNAVAILABLE',
              `the EVM node did not take the transaction: ${shortMessage(err)}`,
            );
          }
        }
      }
      await ctx.store.evm.recordExecution(id, execHash);
    }
    const sent = await ctx.store.intents.updateStatus(id, {
      from: 'signed',
      to: 'broadcast',
      txid: digest,
      audit: auditRecord(ctx, { event: 'transaction.broadcast', subject: id, digest }),
    });
    if (!sent) return;
    ctx.log.info(
      { intent: id, safeTxHash: row.safeTxHash, executionTxHash: execHash },
      'Safe transaction executed',
    );
    const intent = rec.signed.intent;
    await notify(ctx, 'intent.signed', { intent: id, txid: digest });
    await notify(ctx, 'transaction.broadcast', {
      intent: id,
      txid: digest,
      executionTxHash: execHash,
      wallet: intent.wallet,
      chain: intent.chain,
      asset: intent.asset,
      amount: intent.amount,
      to: intent.to,
    });
  }

  /** A nonce of ours was consumed by a transaction Custos did not execute. */
  async #nonceTaken(
    ctx: Context,
    id: Digest,
    wallet: EvmSafeWallet,
    row: SafeTxRecord,
    onChain: bigint,
  ): Promise<void> {
    const message = `nonce ${row.nonce} of Safe ${wallet.address} was used by a transaction Custos did not execute (the Safe is at ${onChain})`;
    await this.#alert(ctx, {
      subject: id,
      digest: digestOf(row.safeTxHash),
      code: 'SAFE_NONCE_REUSED',
      severity: 'critical',
      message,
    });
    await refuseIntent(ctx, id, ['signing', 'signed'], 'SAFE_NONCE_REUSED', message);
    await ctx.store.evm.settle(id);
  }

  // ------------------------------------------------------------- the loop

  /**
   * One pass: confirmations of executed proposals, nonces taken behind our
   * back, and executions of governed Safes that are no proposal of ours.
   */
  async pass(ctx: Context): Promise<void> {
    if (this.#nodes.size === 0) return;
    const state = await ctx.governance.current();
    const nonces = new Map<string, bigint>();
    const safeNonce = async (node: Node, chain: string, safe: Address): Promise<bigint> => {
      const key = `${chain}/${safe}`;
      const known = nonces.get(key);
      if (known !== undefined) return known;
      const n = await this.#nonce(node, safe);
      nonces.set(key, n);
      return n;
    };
    for (const row of await ctx.store.evm.live()) {
      const node = this.#nodes.get(row.chain);
      if (node === undefined) continue;
      try {
        const rec = await ctx.store.intents.get(row.intent);
        if (rec === null) continue;
        if (rec.status === 'broadcast' && row.execHash !== null) {
          await this.#follow(ctx, node, rec, row);
          continue;
        }
        if (rec.status === 'confirmed') {
          await ctx.store.evm.settle(row.intent);
          continue;
        }
        if ((rec.status === 'signing' || rec.status === 'signed') && row.execHash === null) {
          const onChain = await safeNonce(node, row.chain, row.safe as Address);
          if (onChain <= row.nonce) continue;
          const done = await this.#executedBy(node, row.safe as Address, row);
          if (done === null) {
            const wallet = state.wallets.get(rec.signed.intent.wallet);
            if (wallet?.kind === 'evm-safe') await this.#nonceTaken(ctx, rec.id, wallet, row, onChain);
          }
        }
      } catch (err) {
        ctx.log.warn({ ...errorFields(err), intent: row.intent }, 'Safe transaction not followed yet');
      }
    }
    for (const wallet of state.wallets.values()) {
      if (wallet.kind !== 'evm-safe') continue;
      const node = this.#nodes.get(wallet.chain);
      if (node === undefined) continue;
      try {
        await this.#foreignExecutions(ctx, node, wallet);
      } catch (err) {
        ctx.log.warn({ ...errorFields(err), wallet: wallet.id }, "Safe's executions not read yet");
      }
    }
  }

  /** broadcast -> confirmed once the execution has the confirmations asked for. */
  async #follow(ctx: Context, node: Node, rec: IntentRecord, row: SafeTxRecord): Promise<void> {
    const receipt = await node.client
      .getTransactionReceipt({ hash: row.execHash as Hex })
      .catch((err: unknown) => {
        if (err instanceof BaseError && err.name === 'TransactionReceiptNotFoundError') return null;
        throw err;
      });
    if (receipt === null) return; // not mined yet
    const digest = digestOf(row.safeTxHash);
    if (receipt.status !== 'success') {
      const message = `the execution ${row.execHash} reverted`;
      await this.#alert(ctx, {
        subject: rec.id,
        digest,
        code: 'CHAIN_REJECTED',
        severity: 'critical',
        message,
      });
      await refuseIntent(ctx, rec.id, 'broadcast', 'CHAIN_REJECTED', message);
      await ctx.store.evm.settle(rec.id);
      return;
    }
    const tip = await node.client.getBlockNumber();
    const confirmations = Number(tip - receipt.blockNumber + 1n);
    if (confirmations !== row.confirmations) {
      await ctx.store.evm.updateConfirmations(rec.id, {
        blockNumber: receipt.blockNumber,
        blockHash: receipt.blockHash,
        confirmations,
      });
    }
    if (confirmations < node.target) return;
    const moved = await ctx.store.intents.updateStatus(rec.id, {
      from: 'broadcast',
      to: 'confirmed',
      audit: auditRecord(ctx, { event: 'transaction.confirmed', subject: rec.id, digest }),
    });
    if (moved)
      ctx.log.info(
        { intent: rec.id, safeTxHash: row.safeTxHash, confirmations },
        'Safe transaction confirmed',
      );
    await ctx.store.evm.settle(rec.id);
  }

  /** ExecutionSuccess events of a governed Safe since the last pass whose hash is no proposal of ours. */
  async #foreignExecutions(ctx: Context, node: Node, wallet: EvmSafeWallet): Promise<void> {
    const key = `${wallet.chain}/${wallet.address}`;
    const tip = await node.client.getBlockNumber();
    const from = this.#scanned.get(key);
    if (from === undefined) {
      // History before this process started was followed by whoever ran then.
      this.#scanned.set(key, tip + 1n);
      return;
    }
    if (from > tip) return;
    const to = from + LOG_RANGE - 1n < tip ? from + LOG_RANGE - 1n : tip;
    const logs = await node.client.getLogs({
      address: wallet.address as Address,
      event: EXECUTION_SUCCESS,
      fromBlock: from,
      toBlock: to,
    });
    for (const log of logs) {
      const hash = log.args.txHash;
      if (hash === undefined || (await ctx.store.evm.byHash(hash)) !== null) continue;
      await this.#alert(ctx, {
        subject: `wallet:${wallet.id}`,
        digest: digestOf(hash),
        code: 'NO_APPROVED_INTENT',
        severity: 'critical',
        message: `Safe ${wallet.address} executed ${hash} (in ${log.transactionHash}), which no Custos intent proposed: an owner key was used outside Custos`,
      });
    }
    this.#scanned.set(key, to + 1n);
  }

  // --------------------------------------------------------------- balances

  /** Each Safe's ETH (balance) and registered token balances, as GET /v1/wallets shows them. */
  async summaries(state: GovernanceState): Promise<WalletSummary[]> {
    const out: WalletSummary[] = [];
    for (const wallet of state.wallets.values()) {
      if (wallet.kind !== 'evm-safe') continue;
      const node = this.#nodes.get(wallet.chain);
      if (node === undefined) continue;
      const safe = wallet.address as Address;
      try {
        const balances: { asset: string; balance: string }[] = [];
        let native: bigint | null = null;
        for (const assetId of wallet.assets) {
          const asset = state.assets.get(assetId)?.value;
          if (asset === undefined || asset.chain !== wallet.chain) continue;
          const balance =
            asset.kind === 'native'
              ? await node.client.getBalance({ address: safe })
              : await node.client.readContract({
                  address: asset.contract as Address,
                  abi: erc20Abi,
                  functionName: 'balanceOf',
                  args: [safe],
                });
          if (asset.kind === 'native') native = balance;
          balances.push({ asset: asset.id, balance: balance.toString() });
        }
        native ??= await node.client.getBalance({ address: safe });
        out.push({
          id: wallet.id,
          chain: wallet.chain,
          balance: native.toString(),
          utxos: 0,
          receiveAddress: safe,
          balances,
        });
      } catch {
        // The node is away: the wallet is listed with null balances (routes.ts).
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ reads

  async #nonce(node: Node, safe: Address): Promise<bigint> {
    try {
      return await node.client.readContract({ address: safe, abi: SAFE_ABI, functionName: 'nonce' });
    } catch (err) {
      throw new CustosError('UNAVAILABLE', `the Safe's nonce cannot be read: ${shortMessage(err)}`);
    }
  }

  /** The Ethereum transaction whose ExecutionSuccess carries this proposal's hash, if the Safe executed it. */
  async #executedBy(node: Node, safe: Address, row: SafeTxRecord): Promise<Hex | null> {
    const logs = await node.client.getLogs({
      address: safe,
      event: EXECUTION_SUCCESS,
      args: { txHash: row.safeTxHash as Hex },
      fromBlock: 0n,
      toBlock: 'latest',
    });
    return logs[0]?.transactionHash ?? null;
  }

  async #alert(
    ctx: Context,
    a: {
      subject: string;
      digest: Digest;
      code: ErrorCode;
      severity: 'warning' | 'critical';
      message: string;
    },
  ): Promise<void> {
    ctx.log.warn({ subject: a.subject, code: a.code, severity: a.severity }, a.message);
    await auditEvent(ctx, { event: 'alert', subject: a.subject, digest: a.digest });
    await notify(ctx, 'alert', {
      subject: a.subject,
      signer: null,
      code: a.code,
      severity: a.severity,
      message: a.message,
    });
  }
}

/** The job's proposal: decimal strings, checksummed addresses, lower-case calldata (core jobs.ts). */
export function proposalOf(safe: Address, chainId: number, tx: SafeTx): JobSafeTx {
  return {
    safe,
    chainId: String(chainId),
    to: tx.to,
    value: tx.value.toString(),
    data: tx.data.toLowerCase(),
    operation: tx.operation,
    safeTxGas: tx.safeTxGas.toString(),
    baseGas: tx.baseGas.toString(),
    gasPrice: tx.gasPrice.toString(),
    gasToken: tx.gasToken,
    refundReceiver: tx.refundReceiver,
    nonce: tx.nonce.toString(),
  } as JobSafeTx;
}

function safeTxOf(row: SafeTxRecord): SafeTx {
  const p = JSON.parse(row.safeTx) as JobSafeTx;
  return {
    to: p.to as Address,
    value: BigInt(p.value),
    data: p.data as Hex,
    operation: p.operation,
    safeTxGas: BigInt(p.safeTxGas),
    baseGas: BigInt(p.baseGas),
    gasPrice: BigInt(p.gasPrice),
    gasToken: p.gasToken as Address,
    refundReceiver: p.refundReceiver as Address,
    nonce: BigInt(p.nonce),
  };
}

function isRevert(err: unknown): boolean {
  return (
    err instanceof BaseError &&
    err.walk((e) => e instanceof BaseError && /revert/i.test(`${e.name} ${e.shortMessage}`)) !== null
  );
}

/** viem's short message (no request bodies, which could carry a signed transaction). */
function shortMessage(err: unknown): string {
  if (err instanceof BaseError) return err.shortMessage;
  return err instanceof Error ? err.message : String(err);
}

function attemptOf(id: string): number {
  const m = /-([1-9][0-9]{0,3})$/.exec(id);
  return m === null ? 1 : Number(m[1]);
}
