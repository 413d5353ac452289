// The editor-side test of a declared environment built at the first run
// (issue 15): the user's cellbox.sandbox setting declares it (trusted), with
// a slow setup step. While it builds, the status bar shows the step twice:
// in cellbox's own item ("cellbox: building environment (step 5/5): RUN
// sleep 8") and in vscode-languageclient's window progress, after the
// progress's title. Then the block's result is shown on it as usual, and
// cellbox's item says the sandbox's state again.
const assert = require('assert');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');
const { askDriver, withTimeout, runScenario } = require('./askDriver');

const LONG = 180_000;
const BUILDING = /building environment \(step \d+\/\d+\)/;

async function statusBar() {
    return JSON.parse(await askDriver('read-statusbar'));
}

exports.run = () => runScenario(async (facts) => {
    const step = (name) => {
        facts.steps.push(name);
        console.log(`cellbox-test: ${name}`);
    };
    const doc = vscode.Uri.joinPath(vscode.workspace.workspaceFolders[0].uri, 'notes.md');
    const editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(doc));
    const extension = vscode.extensions.getExtension('cellbox.cellbox');
    const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, 60_000);

    step('run the block: the environment is built first');
    editor.selection = new vscode.Selection(1, 0, 1, 0);
    const running = vscode.commands.executeCommand('cellbox.runBlock');
    // Every status bar entry seen meanwhile, for the report when a wait runs out.
    const seen = new Set();
    facts.seen = seen;
    const shown = async (test) => {
        const entries = await statusBar();
        entries.forEach((text) => seen.add(text));
        return entries.find(test);
    };
    try {
        facts.building = await waitFor('the build step in the status bar', () => shown((text) => BUILDING.test(text)), LONG);
        facts.slowStep = await waitFor('the slow step in the window\'s progress', () => shown((text) =>
            text.startsWith('Building the environment (') && BUILDING.test(text) && text.includes('RUN sleep 8')), 60_000);
        facts.cellboxItem = await waitFor('the slow step in cellbox\'s item', async () => /RUN sleep 8/.test(api.statusBarText()) && api.statusBarText(), 60_000);
    } finally {
        facts.seen = [...seen];
    }
    await askDriver('screenshot-environment');

    step('the block runs once the environment is built');
    const result = await withTimeout(running, LONG, 'the run');
    facts.status = result && result.status;
    facts.decorations = api.decorations(doc);
    facts.after = await waitFor('the build step to leave the status bar', async () => {
        const entries = await statusBar();
        return !entries.some((text) => BUILDING.test(text)) && entries;
    }, 10_000);
    facts.cellboxItemAfter = await waitFor('the sandbox\'s state in cellbox\'s item', async () => /sandbox ready/.test(api.statusBarText()) && api.statusBarText(), 10_000);
    assert.strictEqual(facts.status, 'ok');
    facts.done = true;
});
