// Compiles TestUsdc.sol with solc-js (the npm `solc` package, pinned in package-lock.json): no compiler
// download. Writes build/TestUsdc.json with the ABI and the deployment bytecode.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const source = fs.readFileSync(path.join(__dirname, 'TestUsdc.sol'), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'TestUsdc.sol': { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'paris',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = output.contracts['TestUsdc.sol'].TestUsdc;
fs.mkdirSync(path.join(__dirname, 'build'), { recursive: true });
fs.writeFileSync(
  path.join(__dirname, 'build', 'TestUsdc.json'),
  JSON.stringify({ compiler: solc.version(), abi: contract.abi, bytecode: '0x' + contract.evm.bytecode.object }, null, 2));
console.log(`compiled TestUsdc with solc ${solc.version()}`);
