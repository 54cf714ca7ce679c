/**
 * A local EVM chain with Safe 1.4.1 for tests and `custos dev` (issue 9).
 *
 * Why Hardhat 2 in-process: its EDR engine (Rust, shipped in the npm
 * package) starts an empty chain in a few hundred milliseconds, and
 * Hardhat's own JSON-RPC server puts it on 127.0.0.1 at a free port, so the
 * code under test talks JSON-RPC to it exactly as to a production node.
 * No child process: the server and the chain end with the process that
 * started them, and `stop()` ends them sooner. (anvil is a binary download
 * and cannot be had here.)
 *
 * Safe 1.4.1 is deployed from the bytecode in `@safe-global/safe-contracts`
 * (its Hardhat artifacts): the Safe singleton, SafeProxyFactory,
 * CompatibilityFallbackHandler and MultiSendCallOnly. A Safe is a proxy made
 * by the factory with `setup(owners, threshold, ..., fallbackHandler, ...)`.
 *
 * The other contracts are a few lines of Solidity below, compiled with
 * solc-js (wasm, no download) and cached in the temp folder by the hash of
 * source and compiler, so only the first run on a machine pays the compile:
 * - a 6-decimal ERC-20 (the "USDT" of the tests);
 * - Bybit's trojan (Feb 2025): a contract whose `transfer(address,uint256)`
 *   writes its first argument to storage slot 0, which, delegatecalled by a
 *   Safe, is the proxy's singleton; and the backdoor it installed, which
 *   sweeps ETH and tokens to the attacker;
 * - an Ownable pool owned by the Safe (Radiant, Oct 2024: the signers
 *   signed `transferOwnership` of the lending pools).
 *
 * Accounts are derived from fixed labels, funded at genesis, and unlocked on
 * the node: 0 deploys and holds the token supply, 1-3 are owners, 4 is the
 * executor (pays gas, owns nothing), 5 is the attacker.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Abi,
  type Address,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  getAddress,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  parseAbi,
  stringToHex,
  type WalletClient,
  zeroAddress,
} from 'viem';
import { privateKeyToAddress } from 'viem/accounts';

const require = createRequire(import.meta.url);

const SOLC_VERSION_PIN = '0.8.26';

/** The harness's own contracts. Kept tiny: they exist to be called, not to be audited. */
export const HARNESS_SOLIDITY = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ${SOLC_VERSION_PIN};

/// A plain ERC-20 with 6 decimals, like USDT and USDC.
contract TestToken {
    string public constant name = "Custos Test Dollar";
    string public constant symbol = "USDT";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(address holder, uint256 supply) {
        totalSupply = supply;
        balanceOf[holder] = supply;
        emit Transfer(address(0), holder, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "allowance");
        if (allowed != type(uint256).max) allowance[from][msg.sender] = allowed - value;
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) internal {
        require(balanceOf[from] >= value, "balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}

/// Bybit (Feb 2025): delegatecalled by the Safe, transfer() writes storage slot 0, the proxy's singleton.
contract Trojan {
    address private slot0;

    function transfer(address to, uint256) external {
        slot0 = to;
    }
}

/// What the trojan installs as the singleton: the attacker sweeps ETH and tokens.
contract Backdoor {
    address private slot0;
    address private immutable attacker;

    constructor(address attacker_) {
        attacker = attacker_;
    }

    function sweepETH(address payable to) external {
        require(msg.sender == attacker, "no");
        to.transfer(address(this).balance);
    }

    function sweepERC20(address token, address to) external {
        require(msg.sender == attacker, "no");
        TestToken(token).transfer(to, TestToken(token).balanceOf(address(this)));
    }
}

/// Radiant (Oct 2024): a pool whose owner is the Safe; transferOwnership hands it over.
contract OwnedPool {
    address public owner;
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    constructor(address initialOwner) {
        owner = initialOwner;
    }

    function transferOwnership(address newOwner) external {
        require(msg.sender == owner, "not owner");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
`;

const HARNESS_CONTRACTS = ['TestToken', 'Trojan', 'Backdoor', 'OwnedPool'] as const;
type HarnessContract = (typeof HARNESS_CONTRACTS)[number];

export interface CompiledContract {
  readonly abi: Abi;
  readonly bytecode: Hex;
}

export const TOKEN_ABI = parseAbi([
  'function name() view returns (string)',
  'function symbol() view returns (string)',
  'function decimals() view returns (uint8)',
  'function totalSupply() view returns (uint256)',
  'function balanceOf(address) view returns (uint256)',
  'function transfer(address to, uint256 value) returns (bool)',
]);
export const TROJAN_ABI = parseAbi(['function transfer(address to, uint256 value)']);
export const BACKDOOR_ABI = parseAbi([
  'function sweepETH(address to)',
  'function sweepERC20(address token, address to)',
]);
export const OWNABLE_ABI = parseAbi([
  'function owner() view returns (address)',
  'function transferOwnership(address newOwner)',
]);
const PROXY_FACTORY_ABI = parseAbi([
  'function createProxyWithNonce(address singleton, bytes initializer, uint256 saltNonce) returns (address proxy)',
]);
const SAFE_SETUP_ABI = parseAbi([
  'function setup(address[] owners, uint256 threshold, address to, bytes data, address fallbackHandler, address paymentToken, uint256 payment, address paymentReceiver)',
]);

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
}

/** Compiles the harness contracts once per machine (cached in the temp folder by source and compiler hash). */
export function compileHarnessContracts(): Record<HarnessContract, CompiledContract> {
  const solcVersion: string = require('solc/package.json').version;
  const key = createHash('sha256').update(`${solcVersion}\n${HARNESS_SOLIDITY}`).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'custos-evm-chain');
  const file = join(dir, `harness-${key}.json`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<HarnessContract, CompiledContract>;
  } catch {
    // Not cached yet (or unreadable): compile below.
  }
  const solc = require('solc') as { compile(input: string): string };
  const input = {
    language: 'Solidity',
    sources: { 'Harness.sol': { content: HARNESS_SOLIDITY } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join('\n')}`);
  }
  const compiled = {} as Record<HarnessContract, CompiledContract>;
  for (const name of HARNESS_CONTRACTS) {
    const c = output.contracts?.['Harness.sol']?.[name];
    if (c === undefined) throw new Error(`solc produced no ${name}`);
    compiled[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
  }
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(compiled));
  renameSync(tmp, file);
  return compiled;
}

/** A Safe 1.4.1 contract's ABI and creation bytecode from @safe-global/safe-contracts' build artifacts. */
export function safeArtifact(
  name: 'Safe' | 'SafeProxyFactory' | 'CompatibilityFallbackHandler' | 'MultiSendCallOnly',
): CompiledContract {
  const path = {
    Safe: 'contracts/Safe.sol/Safe.json',
    SafeProxyFactory: 'contracts/proxies/SafeProxyFactory.sol/SafeProxyFactory.json',
    CompatibilityFallbackHandler:
      'contracts/handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json',
    MultiSendCallOnly: 'contracts/libraries/MultiSendCallOnly.sol/MultiSendCallOnly.json',
  }[name];
  const artifact = require(`@safe-global/safe-contracts/build/artifacts/${path}`) as {
    abi: Abi;
    bytecode: Hex;
  };
  return { abi: artifact.abi, bytecode: artifact.bytecode };
}

export interface EvmAccount {
  readonly privateKey: Hex;
  readonly address: Address;
}

export interface SafeContracts {
  readonly singleton: Address;
  /** keccak256 of the singleton's runtime code: what governance pins. */
  readonly singletonCodeHash: Hex;
  readonly proxyFactory: Address;
  readonly fallbackHandler: Address;
  readonly multiSendCallOnly: Address;
}

export interface DeploySafeOptions {
  /** Wei sent to the Safe; default 100 ETH. */
  readonly eth?: bigint;
  /** Token base units sent to the Safe; default 1,000,000 tokens (10^12). */
  readonly tokens?: bigint;
  /** The factory's salt; default a counter. */
  readonly saltNonce?: bigint;
}

export interface DeployedSafe {
  readonly address: Address;
  readonly owners: readonly Address[];
  readonly threshold: number;
  /** An OwnedPool whose owner is this Safe (the Radiant replay's target). */
  readonly ownable: Address;
}

export interface EvmChain {
  /** http://127.0.0.1:<port>/ */
  readonly rpcUrl: string;
  readonly chainId: number;
  /** Funded, unlocked accounts: 0 deployer and token holder, 1-3 owners, 4 executor, 5 attacker, 6-7 spare. */
  readonly accounts: readonly EvmAccount[];
  readonly safeContracts: SafeContracts;
  /** The 6-decimal test ERC-20; account 0 holds what no Safe was sent. */
  readonly token: Address;
  /** Bybit's trojan: transfer(address,uint256) writes storage slot 0. */
  readonly trojan: Address;
  /** The backdoor singleton the trojan installs; only the attacker (account 5) may sweep. */
  readonly backdoor: Address;
  readonly publicClient: PublicClient;
  /** A wallet client whose JSON-RPC account `from` sends (the node holds every harness key). */
  wallet(from: Address): WalletClient;
  /** Creates a funded Safe proxy with these owners, threshold and the compatibility fallback handler. */
  deploySafe(
    owners: readonly Address[],
    threshold: number,
    options?: DeploySafeOptions,
  ): Promise<DeployedSafe>;
  /** Deploys an OwnedPool owned by `owner`. */
  deployOwnable(owner: Address): Promise<Address>;
  /** Sends a transaction from an unlocked account and waits for its receipt (throws if it reverted). */
  send(from: Address, to: Address, data: Hex, value?: bigint): Promise<Hex>;
  stop(): Promise<void>;
}

export interface EvmChainOptions {
  /** Default 31337 (Hardhat's). */
  readonly chainId?: number;
}

interface HardhatServer {
  listen(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

/** The account labels; keys are keccak256 of them, so every run has the same addresses. */
const ACCOUNT_LABELS = [
  'deployer',
  'owner-1',
  'owner-2',
  'owner-3',
  'executor',
  'attacker',
  'spare-1',
  'spare-2',
];
const GENESIS_BALANCE = 10n ** 24n; // 1,000,000 ETH each

export function harnessAccounts(): EvmAccount[] {
  return ACCOUNT_LABELS.map((label) => {
    const privateKey = keccak256(stringToHex(`custos evm-chain ${label}`));
    return { privateKey, address: privateKeyToAddress(privateKey) };
  });
}

/** Hardhat resolves a config relative to a file that must exist; an empty one in the temp folder does. */
function hardhatConfigPath(): string {
  const dir = join(tmpdir(), 'custos-evm-chain');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'hardhat.config.cjs');
  try {
    readFileSync(path);
  } catch {
    writeFileSync(path, 'module.exports = {};\n');
  }
  return path;
}

async function startHardhat(
  chainId: number,
  accounts: readonly EvmAccount[],
): Promise<{ url: string; server: HardhatServer }> {
  const { resolveConfig } = require('hardhat/internal/core/config/config-resolution') as {
    resolveConfig(path: string, user: unknown): unknown;
  };
  const { createProvider } = require('hardhat/internal/core/providers/construction') as {
    createProvider(config: unknown, network: string): Promise<unknown>;
  };
  const { JsonRpcServer } = require('hardhat/internal/hardhat-network/jsonrpc/server') as {
    JsonRpcServer: new (config: { hostname: string; port: number; provider: unknown }) => HardhatServer;
  };
  const config = resolveConfig(hardhatConfigPath(), {
    networks: {
      hardhat: {
        chainId,
        accounts: accounts.map((a) => ({ privateKey: a.privateKey, balance: GENESIS_BALANCE.toString() })),
        loggingEnabled: false,
      },
    },
  });
  const provider = await createProvider(config, 'hardhat');
  const server = new JsonRpcServer({ hostname: '127.0.0.1', port: 0, provider });
  const { port } = await server.listen();
  return { url: `http://127.0.0.1:${port}/`, server };
}

/** Starts the chain and deploys Safe 1.4.1, the token, the trojan and the backdoor. */
export async function startEvmChain(options: EvmChainOptions = {}): Promise<EvmChain> {
  const chainId = options.chainId ?? 31337;
  const accounts = harnessAccounts();
  const compiled = compileHarnessContracts();
  const { url, server } = await startHardhat(chainId, accounts);
  const chain = {
    id: chainId,
    name: 'custos-local',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  } as const;
  const transport = http(url, { retryCount: 0 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 }) as PublicClient;
  const wallet = (from: Address) => createWalletClient({ chain, transport, account: from });
  const [deployer, , , , , attacker] = accounts as [EvmAccount, ...EvmAccount[]];

  const receiptOf = async (hash: Hex) => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`);
    return receipt;
  };
  const deploy = async (contract: CompiledContract, args: readonly unknown[] = []): Promise<Address> => {
    const hash = await wallet(deployer.address).deployContract({
      abi: contract.abi,
      bytecode: contract.bytecode,
      args,
      account: deployer.address,
      chain,
    });
    const receipt = await receiptOf(hash);
    if (receipt.contractAddress === null || receipt.contractAddress === undefined)
      throw new Error('no contract');
    return getAddress(receipt.contractAddress);
  };
  const send = async (from: Address, to: Address, data: Hex, value = 0n): Promise<Hex> => {
    const hash = await wallet(from).sendTransaction({ account: from, chain, to, data, value });
    await receiptOf(hash);
    return hash;
  };

  try {
    const singleton = await deploy(safeArtifact('Safe'));
    const proxyFactory = await deploy(safeArtifact('SafeProxyFactory'));
    const fallbackHandler = await deploy(safeArtifact('CompatibilityFallbackHandler'));
    const multiSendCallOnly = await deploy(safeArtifact('MultiSendCallOnly'));
    const token = await deploy(compiled.TestToken, [deployer.address, 10n ** 18n]);
    const trojan = await deploy(compiled.Trojan);
    const backdoor = await deploy(compiled.Backdoor, [attacker!.address]);
    const singletonCode = (await publicClient.getCode({ address: singleton })) ?? '0x';
    const safeContracts: SafeContracts = {
      singleton,
      singletonCodeHash: keccak256(singletonCode),
      proxyFactory,
      fallbackHandler,
      multiSendCallOnly,
    };
    let salt = 0n;

    const deployOwnable = (owner: Address) => deploy(compiled.OwnedPool, [owner]);
    const deploySafe = async (
      owners: readonly Address[],
      threshold: number,
      opts: DeploySafeOptions = {},
    ): Promise<DeployedSafe> => {
      const initializer = encodeFunctionData({
        abi: SAFE_SETUP_ABI,
        functionName: 'setup',
        args: [
          [...owners],
          BigInt(threshold),
          zeroAddress,
          '0x',
          fallbackHandler,
          zeroAddress,
          0n,
          zeroAddress,
        ],
      });
      const saltNonce = opts.saltNonce ?? salt++;
      const { result, request } = await publicClient.simulateContract({
        address: proxyFactory,
        abi: PROXY_FACTORY_ABI,
        functionName: 'createProxyWithNonce',
        args: [singleton, initializer, saltNonce],
        account: deployer.address,
      });
      await receiptOf(
        await wallet(deployer.address).writeContract({ ...request, chain, account: deployer.address }),
      );
      const address = getAddress(result);
      await send(deployer.address, address, '0x', opts.eth ?? 100n * 10n ** 18n);
      const tokens = opts.tokens ?? 10n ** 12n;
      if (tokens > 0n) {
        await send(
          deployer.address,
          token,
          encodeFunctionData({ abi: TOKEN_ABI, functionName: 'transfer', args: [address, tokens] }),
        );
      }
      const ownable = await deployOwnable(address);
      return { address, owners: owners.map((o) => getAddress(o)), threshold, ownable };
    };

    let stopped = false;
    return {
      rpcUrl: url,
      chainId,
      accounts,
      safeContracts,
      token,
      trojan,
      backdoor,
      publicClient,
      wallet,
      deploySafe,
      deployOwnable,
      send,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await server.close();
      },
    };
  } catch (err) {
    await server.close();
    throw err;
  }
}
