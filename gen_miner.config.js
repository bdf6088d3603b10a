// pm2 ecosystem file for the generative miner: `pm2 start gen_miner.config.js` (gascli drives this).
// Settings come from .env.gen_miner (or GAS_ENV_FILE): see docs/configuration.md.
const { app } = require('./configs/pm2/ecosystem');

module.exports = {
  apps: [app({ name: 'gas-generator', module: 'neurons.generator', envFile: '.env.gen_miner' })],
};
