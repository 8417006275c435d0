// Every temporary folder the tests make (their own mkdtemp calls and cdktn's
// Testing outdirs, "cdktf.outdir.*") goes into one folder per run, which
// jest/tmpdir-teardown.js removes: a run leaves nothing in the system's /tmp.
// The workers jest starts after this inherit TMPDIR, and os.tmpdir() reads it.
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

module.exports = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-jest-"));
  process.env.JOBS_JEST_TMPDIR = dir;
  process.env.TMPDIR = dir;
};
