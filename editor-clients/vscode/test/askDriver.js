// Asks drive.js (outside the editor, in the browser) to do something, through
// request-/done- files in $CELLBOX_VSCODE_TEST_DIR, and waits until it has.
// Shared by the editor test suites that press keys, type or read the screen.
'use strict';
const fs = require('fs');
const path = require('path');
const { waitFor } = require('./waitFor');

const testDir = process.env.CELLBOX_VSCODE_TEST_DIR;

/** What the driver answers to `action` (e.g. read-notifications), once it has done it; `payload` is what to type. */
async function askDriver(action, payload = '') {
    const done = path.join(testDir, `done-${action}`);
    // An answer to an earlier request of the same action is not this one's.
    fs.rmSync(done, { force: true });
    // Written whole, then renamed: the driver reads it as soon as it exists.
    const request = path.join(testDir, `request-${action}`);
    fs.writeFileSync(`${testDir}/.pending-${action}`, payload);
    fs.renameSync(`${testDir}/.pending-${action}`, request);
    await waitFor(`the driver to do ${action}`, async () => fs.existsSync(done), 60_000);
    return fs.readFileSync(done, 'utf8');
}

/** The notifications on screen: [{message, buttons}]. */
async function notifications() {
    return JSON.parse(await askDriver('read-notifications'));
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, timeoutMs, what) {
    return Promise.race([
        Promise.resolve(promise),
        sleep(timeoutMs).then(() => { throw new Error(`timed out waiting for ${what}`); }),
    ]);
}

/** Run a scenario, writing what it saw (and its error) to facts.json for the pytest side. */
async function runScenario(scenario) {
    const facts = { steps: [] };
    try {
        await scenario(facts);
    } catch (error) {
        facts.error = String((error && error.stack) || error);
        throw error;
    } finally {
        fs.writeFileSync(path.join(testDir, 'facts.json'), JSON.stringify(facts, null, 2));
    }
}

module.exports = { askDriver, notifications, sleep, withTimeout, runScenario, testDir };
