/**
 * What an approver's client shows and checks of a Safe transaction (issue 9,
 * THREATS 28-29) before a person approves: Bybit's signers approved in a web
 * page that showed a transfer while the bytes were a DELEGATECALL, so here
 * the SafeTx is decoded by this client from the coordinator's proposal (or
 * built here from the intent when the coordinator has not built one yet),
 * every field is shown, and anything that is not the plain transfer the
 * signed intent names is a warning on its own line and a problem that stops
 * the approval (the same check every signer runs,
 * `checkSafeTxIsPlainTransfer`).
 *
 * Pure: the intent, the verified governance state and the coordinator's
 * proposal in; the fields, warnings and problems out.
 */
import {
  type Asset,
  type ErrorCode,
  type EvmSafeWallet,
  evmChainId,
  type GovernanceState,
  type Intent,
  jobSafeTx,
} from '@custos/core';
import {
  type Address,
  buildTransferSafeTx,
  checkSafeTxIsPlainTransfer,
  decodeErc20Transfer,
  formatAmount,
  OPERATION_CALL,
  parseEvmAddress,
  type SafeTx,
  safeTxHash,
  sameAddress,
  ZERO_ADDRESS,
} from '@custos/evm';

export interface SafeTxField {
  readonly name: string;
  readonly value: string;
  /** What it means, decoded here (recipient, token, amount with its unit). */
  readonly note?: string;
}

export interface SafeTxReview {
  /** Whether the fields are the coordinator's proposal (else built here: the nonce is assigned when built). */
  readonly proposed: boolean;
  readonly fields: readonly SafeTxField[];
  /** The EIP-712 hash the owners sign, computed here; null before the nonce is known. */
  readonly safeTxHash: string | null;
}

export interface SafeTxCheck {
  readonly review: SafeTxReview | null;
  readonly problems: { code: ErrorCode; message: string }[];
  readonly warnings: { code: string; message: string }[];
}

/** An amount with its unit from the asset registry: `25.5 USDT (25500000 base units)`. */
export function formatAssetAmount(
  amount: string | bigint,
  asset: Asset | undefined,
  fallback: string,
): string {
  const base = typeof amount === 'bigint' ? amount : BigInt(amount);
  if (asset === undefined) return `${base} ${fallback}`;
  return `${formatAmount(base, asset.decimals)} ${asset.symbol} (${base} base units)`;
}

export function reviewSafeTx(
  intent: Intent,
  wallet: EvmSafeWallet,
  state: GovernanceState,
  proposalJson: unknown,
): SafeTxCheck {
  const problems: SafeTxCheck['problems'] = [];
  const warnings: SafeTxCheck['warnings'] = [];
  const asset = state.assets.get(intent.asset)?.value;
  const chainId = evmChainId(wallet.chain);
  if (asset === undefined || asset.chain !== wallet.chain) {
    problems.push({ code: 'UNKNOWN_ASSET', message: `${intent.asset} is not registered on ${wallet.chain}` });
    return { review: null, problems, warnings };
  }
  const to = parseEvmAddress(intent.to);
  if (!to.ok) {
    problems.push({ code: to.code as ErrorCode, message: `${intent.to}: ${to.message}` });
    return { review: null, problems, warnings };
  }
  if (chainId === undefined) {
    problems.push({ code: 'WRONG_CHAIN', message: `${wallet.chain} is not an eip155 chain` });
    return { review: null, problems, warnings };
  }
  const safe = wallet.address as Address;
  const evmAsset =
    asset.kind === 'native'
      ? ({ kind: 'native' } as const)
      : ({ kind: 'erc20', contract: asset.contract as Address } as const);
  const expected = { chainId, safe, asset: evmAsset, to: to.value, amount: BigInt(intent.amount) };

  if (proposalJson === null || proposalJson === undefined) {
    const tx = buildTransferSafeTx({ ...expected, nonce: 0n });
    return {
      review: { proposed: false, fields: fieldsOf(safe, chainId, tx, asset, state, false), safeTxHash: null },
      problems,
      warnings,
    };
  }
  let parsed: ReturnType<typeof jobSafeTx.parse>;
  try {
    parsed = jobSafeTx.parse(proposalJson, 'safeTx');
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    problems.push({ code: 'INVALID_VALUE', message: `the coordinator's SafeTx does not decode: ${message}` });
    return { review: null, problems, warnings };
  }
  const tx: SafeTx = {
    to: parsed.to as Address,
    value: BigInt(parsed.value),
    data: parsed.data as `0x${string}`,
    operation: parsed.operation,
    safeTxGas: BigInt(parsed.safeTxGas),
    baseGas: BigInt(parsed.baseGas),
    gasPrice: BigInt(parsed.gasPrice),
    gasToken: parsed.gasToken as Address,
    refundReceiver: parsed.refundReceiver as Address,
    nonce: BigInt(parsed.nonce),
  };
  const proposedChain = Number(parsed.chainId);
  const proposedSafe = parsed.safe as Address;
  // Each field that is not the plain transfer gets its own line, so a person sees all of them, not the first.
  if (proposedChain !== chainId) {
    warnings.push({
      code: 'WRONG_CHAIN',
      message: `chainId ${parsed.chainId}, the wallet is on ${wallet.chain}`,
    });
  }
  if (!sameAddress(proposedSafe, safe)) {
    warnings.push({ code: 'UNKNOWN_WALLET', message: `the SafeTx is for Safe ${proposedSafe}, not ${safe}` });
  }
  if (tx.operation !== OPERATION_CALL) {
    warnings.push({
      code: 'OPERATION_FORBIDDEN',
      message: `operation ${tx.operation} (DELEGATECALL): ${tx.to} would run with the Safe's storage and funds (Bybit 2025)`,
    });
  }
  if (sameAddress(tx.to, safe)) {
    warnings.push({
      code: 'OPERATION_FORBIDDEN',
      message:
        'a call to the Safe itself: it changes owners, threshold, modules, guard or implementation (WazirX 2024)',
    });
  }
  for (const [name, v] of [
    ['safeTxGas', tx.safeTxGas],
    ['baseGas', tx.baseGas],
    ['gasPrice', tx.gasPrice],
  ] as const) {
    if (v !== 0n) {
      warnings.push({
        code: 'OPERATION_FORBIDDEN',
        message: `${name} ${v}: the Safe would pay a gas refund`,
      });
    }
  }
  for (const [name, v] of [
    ['gasToken', tx.gasToken],
    ['refundReceiver', tx.refundReceiver],
  ] as const) {
    if (!sameAddress(v, ZERO_ADDRESS)) {
      warnings.push({ code: 'OPERATION_FORBIDDEN', message: `${name} ${v}: a refund would be paid to it` });
    }
  }
  const want = buildTransferSafeTx({ ...expected, nonce: tx.nonce });
  if (tx.data.length > 2 && !decodeErc20Transfer(tx.data).ok) {
    warnings.push({
      code: 'CALLDATA_MISMATCH',
      message: `the call is ${tx.data.slice(0, 10)}…, not an ERC-20 transfer (Radiant 2024 signed transferOwnership)`,
    });
  } else if (!sameAddress(tx.to, want.to) || tx.value !== want.value || tx.data.toLowerCase() !== want.data) {
    warnings.push({
      code: 'CALLDATA_MISMATCH',
      message: `the transfer is not ${formatAssetAmount(intent.amount, asset, intent.asset)} to ${to.value}, which the intent names`,
    });
  }
  const checked = checkSafeTxIsPlainTransfer(
    { chainId: proposedChain, safe: proposedSafe, tx },
    { ...expected, nonce: tx.nonce },
  );
  if (!checked.ok) {
    problems.push({
      code: checked.code as ErrorCode,
      message: `the SafeTx the coordinator proposed: ${checked.message}`,
    });
  }
  return {
    review: {
      proposed: true,
      fields: fieldsOf(proposedSafe, proposedChain, tx, asset, state, true),
      safeTxHash: safeTxHash(proposedSafe, proposedChain, tx),
    },
    problems,
    warnings,
  };
}

/** Every SafeTx field, with what it decodes to. */
function fieldsOf(
  safe: Address,
  chainId: number,
  tx: SafeTx,
  asset: Asset,
  state: GovernanceState,
  nonceKnown: boolean,
): SafeTxField[] {
  const tokenOf = (a: Address): Asset | undefined =>
    [...state.assets.values()]
      .map((t) => t.value)
      .find((t) => t.kind === 'erc20' && t.chain === asset.chain && sameAddress(t.contract, a));
  const token = tokenOf(tx.to);
  const transfer = tx.data.length > 2 ? decodeErc20Transfer(tx.data) : null;
  const native = state.assets.get(
    [...state.assets.values()].find((a) => a.value.kind === 'native' && a.value.chain === asset.chain)?.value
      .id ?? '',
  )?.value;
  return [
    { name: 'safe', value: safe },
    { name: 'chainId', value: String(chainId) },
    {
      name: 'to',
      value: tx.to,
      note: sameAddress(tx.to, safe)
        ? 'THE SAFE ITSELF'
        : token !== undefined
          ? `token ${token.symbol} (${token.id})`
          : transfer === null
            ? 'recipient'
            : 'NOT A REGISTERED TOKEN',
    },
    { name: 'value', value: tx.value.toString(), note: formatAssetAmount(tx.value, native, 'wei') },
    {
      name: 'data',
      value:
        tx.data.length > 2 + 2 * 68 + 20
          ? `${tx.data.slice(0, 2 + 2 * 68)}… (${(tx.data.length - 2) / 2} bytes)`
          : tx.data,
      note:
        tx.data.length === 2
          ? 'empty (a plain ETH transfer)'
          : transfer?.ok === true
            ? `transfer(${transfer.value.to}, ${formatAssetAmount(transfer.value.amount, token, 'base units')})`
            : `NOT AN ERC-20 TRANSFER (selector ${tx.data.slice(0, 10)})`,
    },
    {
      name: 'operation',
      value: String(tx.operation),
      note: tx.operation === OPERATION_CALL ? 'CALL' : 'DELEGATECALL',
    },
    { name: 'safeTxGas', value: tx.safeTxGas.toString() },
    { name: 'baseGas', value: tx.baseGas.toString() },
    { name: 'gasPrice', value: tx.gasPrice.toString() },
    { name: 'gasToken', value: tx.gasToken },
    { name: 'refundReceiver', value: tx.refundReceiver },
    nonceKnown
      ? { name: 'nonce', value: tx.nonce.toString() }
      : { name: 'nonce', value: '(assigned when the coordinator builds it)' },
  ];
}
