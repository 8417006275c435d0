/** @type {import("jest").Config} */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  testMatch: ["**/*.test.ts"],
  setupFilesAfterEnv: ["<rootDir>/__tests__/setup.ts"],
  // One temporary folder per run, removed at its end (jest/tmpdir-setup.js).
  globalSetup: "<rootDir>/jest/tmpdir-setup.js",
  globalTeardown: "<rootDir>/jest/tmpdir-teardown.js",
  // Synthesizing loads the AWS provider bindings: give the first test time.
  testTimeout: 60000,
};
