// Polls `probe` until it gives a truthy value, and returns it; fails naming
// `what` after `timeoutMs`. Shared by the editor test suites.
'use strict';

async function waitFor(what, probe, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value) {
            return value;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

module.exports = { waitFor };
