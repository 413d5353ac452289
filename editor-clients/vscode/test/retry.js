// The editor-side test of a server that could not start (issue 13): with no
// cellbox on PATH the user is told so, a command tries again and says so
// again, and once cellbox is installed the next command starts the server
// and runs the block, without reloading the window.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');
const { notifications, withTimeout, runScenario, testDir } = require('./askDriver');

const LONG = 180_000;
const NOT_FOUND = /no cellbox command found/;

exports.run = () => runScenario(async (facts) => {
    const step = (name) => {
        facts.steps.push(name);
        console.log(`cellbox-test: ${name}`);
    };
    const folder = vscode.workspace.workspaceFolders[0].uri;
    const doc = vscode.Uri.joinPath(folder, 'doc.md');

    // The extension host's PATH (code-server sets its own): a folder of it,
    // empty for now, where cellbox is installed halfway through.
    const bin = path.join(testDir, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    const kept = (process.env.PATH || '').split(path.delimiter).filter((dir) => dir && !fs.existsSync(path.join(dir, 'cellbox')));
    process.env.PATH = [bin, ...kept].join(path.delimiter);

    step('open a Markdown file with no cellbox on PATH');
    const editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(doc));
    const extension = vscode.extensions.getExtension('cellbox.cellbox');
    const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, 60_000);
    facts.first = await waitFor('the message that no cellbox was found', async () => {
        const shown = await notifications();
        return shown.some((n) => NOT_FOUND.test(n.message)) && shown;
    }, 60_000);
    await vscode.commands.executeCommand('notifications.clearAll');

    step('run a block: the start is tried again, and fails again, saying so');
    editor.selection = new vscode.Selection(1, 0, 1, 0);
    facts.again = await withTimeout(vscode.commands.executeCommand('cellbox.runBlock'), 60_000, 'the run with no server');
    facts.againShown = await waitFor('the message again', async () => {
        const shown = await notifications();
        return shown.some((n) => NOT_FOUND.test(n.message)) && shown;
    }, 20_000).catch(async () => notifications());
    assert.ok(facts.againShown.some((n) => NOT_FOUND.test(n.message)), 'the second try said nothing');

    step('install cellbox on PATH, and run the block');
    fs.copyFileSync(path.join(testDir, 'cellbox-to-install'), path.join(bin, 'cellbox'));
    fs.chmodSync(path.join(bin, 'cellbox'), 0o755);
    const result = await withTimeout(vscode.commands.executeCommand('cellbox.runBlock'), LONG, 'the run once cellbox is installed');
    facts.installed = { status: result && result.status, decorations: api.decorations(doc) };
    assert.strictEqual(result && result.status, 'ok', 'the block did not run once cellbox was installed');
    assert.match(facts.installed.decorations[1] || '', /^✓ .*installed now$/);
    facts.done = true;
});
