// Config for `npx hardhat node` in DeCloud.Billing's chain tests: no compilation happens through hardhat
// (the test token is compiled with solc-js by compile-token.js), only the in-process network.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      // Mine only when a transaction arrives (the default); tests mine extra blocks with hardhat_mine.
      mining: { auto: true },
    },
  },
};
