// Shared by validator.config.js and gen_miner.config.js: builds one pm2 app that runs a Python
// module from the project's .venv with the role's env file passed through as environment.
// The daemon reads the same GAS_* names through gas.config, so pm2 and gascli agree.
'use strict';
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');

// KEY=VALUE lines; '#' comments; optional 'export '; single or double quotes stripped.
function parseEnvFile(file) {
  const out = {};
  if (!file || !fs.existsSync(file)) return out;
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = line.match(/^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/);
    if (!m) throw new Error(`${file}:${i + 1}: expected KEY=VALUE, got: ${raw}`);
    let value = m[2];
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, '');
    out[m[1]] = value;
  });
  return out;
}

function pythonInterpreter() {
  const venv = path.join(ROOT, '.venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

// name: pm2 process name; module: python -m target; envFile: name of the role's env file.
function app({ name, module, envFile }) {
  const file = process.env.GAS_ENV_FILE || path.join(ROOT, envFile);
  const env = { ...parseEnvFile(file), PYTHONUNBUFFERED: '1' };
  if (fs.existsSync(file)) env.GAS_ENV_FILE = file;
  return {
    name,
    namespace: 'gas',
    script: pythonInterpreter(),
    args: ['-m', module],
    interpreter: 'none',
    cwd: ROOT,
    env,
    autorestart: true,
    max_restarts: 10,
    min_uptime: '10s',
    restart_delay: 4000,
    time: true,
  };
}

module.exports = { app, parseEnvFile, ROOT };
