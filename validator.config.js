// pm2 ecosystem file for the validator: `pm2 start validator.config.js` (gascli drives this).
// Settings come from .env.validator (or GAS_ENV_FILE): see docs/configuration.md.
const { app } = require('./configs/pm2/ecosystem');

module.exports = {
  apps: [app({ name: 'gas-validator', module: 'neurons.validator', envFile: '.env.validator' })],
};
