// Removes the run's temporary folder (jest/tmpdir-setup.js).
const fs = require("node:fs");

module.exports = async () => {
  const dir = process.env.JOBS_JEST_TMPDIR;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
};
