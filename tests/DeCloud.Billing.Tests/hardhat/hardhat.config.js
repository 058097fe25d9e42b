// Config for `npx hardhat node` in DeCloud.Billing's chain tests. Nothing is compiled through hardhat
// (compile-token.js compiles the test token with solc-js); only the in-process network is used.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      // A reverted transaction is still mined and its hash returned, so tests can claim it.
      throwOnTransactionFailures: false,
      throwOnCallFailures: false,
    },
  },
};
