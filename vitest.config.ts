import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // expect.poll waits for something that will happen (a page navigates, a row appears): on a CI
    // machine running many suites at once, 1 s (the default) was seen too short for a sign-in.
    expect: { poll: { timeout: 10_000 } },
  },
});
