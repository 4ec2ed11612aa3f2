/** A StreamObserver for tests that drive ProcessStream or ExtProcServer directly: silent, except what a test overrides; internal errors fail the test. */
import type { StreamObserver } from '../../src/extproc/stream.js';

export function testObserver(overrides: Partial<StreamObserver> = {}): StreamObserver {
  return {
    messageHandled: () => {},
    protocolError: () => {},
    nonLlmRequest: () => {},
    record: () => {},
    streamOpened: () => {},
    streamClosed: () => {},
    streamEndedByServer: () => {},
    transitionRefused: () => {},
    internalError: (err) => {
      throw err;
    },
    ...overrides,
  };
}
