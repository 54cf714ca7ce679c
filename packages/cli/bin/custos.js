#!/usr/bin/env node
/**
 * The `custos` executable. The workspace packages ship TypeScript sources
 * (their exports point at .ts files), so tsx is registered in this process to
 * compile them as they load: the command runs from a checkout with no build
 * step and no second process between the shell and the command, so signals
 * (Ctrl-C in `custos dev`) reach it directly.
 */
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/main.ts');
const code = await run(process.argv.slice(2));
// Everything the command started is closed by now; idle keep-alive sockets and library timers must not
// hold the exit. Output is flushed first (pipes are asynchronous on some platforms).
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
