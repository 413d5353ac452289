// The editor-side test of what the extension takes from a workspace it
// cannot trust with the host: it runs against the stub server
// (tests/editors/stub_server.py), named in the user settings, which logs
// every message it receives to $CELLBOX_VSCODE_TEST_DIR/stub.jsonl. The
// folder's .vscode/settings.json names another server command and loosens
// the sandbox. The test reads what the server was started with, the
// notifications a user sees (through drive.js), answers the server's
// approval question by clicking its button, runs the trust command, and
// rewrites .vscode/settings.json as a block in the sandbox could. In
// Restricted Mode, the same less what VS Code itself hides from extensions.
// Facts go to $CELLBOX_VSCODE_TEST_DIR/facts.json, as in suite.js.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');

const testDir = process.env.CELLBOX_VSCODE_TEST_DIR;
const stubLog = path.join(testDir, 'stub.jsonl');
const LONG = 60_000;

exports.run = async function run() {
    const facts = { steps: [] };
    try {
        await scenario(facts);
    } catch (error) {
        facts.error = String(error && error.stack || error);
        throw error;
    } finally {
        fs.writeFileSync(path.join(testDir, 'facts.json'), JSON.stringify(facts, null, 2));
    }
};

async function scenario(facts) {
    const step = (name) => {
        facts.steps.push(name);
        console.log(`cellbox-test: ${name}`);
    };
    const folder = vscode.workspace.workspaceFolders[0];
    const notes = vscode.Uri.joinPath(folder.uri, 'notes.md');
    facts.trusted = vscode.workspace.isTrusted;
    facts.serverCommandScopes = vscode.workspace.getConfiguration('cellbox', folder.uri).inspect('serverCommand');

    step('open notes.md');
    const editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(notes));
    const extension = vscode.extensions.getExtension('cellbox.cellbox');
    const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, LONG);

    step('the server the user named starts, with the user\'s settings trusted');
    const initializes = () => received().filter((m) => m.method === 'initialize').map((m) => m.params.initializationOptions);
    facts.initializationOptions = (await waitFor('the stub server\'s initialize', async () => initializes().length > 0 && initializes(), LONG))[0];

    if (facts.trusted) {
        // (In Restricted Mode VS Code itself hides the workspace's value from extensions.)
        step('the workspace\'s serverCommand is ignored, and the user is told');
        facts.serverCommandWarning = (await notificationContaining('cellbox.serverCommand')).message;
    }

    step('the server\'s approval question, answered with its button');
    editor.selection = new vscode.Selection(1, 0, 1, 0);
    const running = vscode.commands.executeCommand('cellbox.runBlock');
    facts.question = await notificationContaining('asks to loosen the sandbox');
    await askDriver('screenshot-approval');
    await askDriver('click-Allow');
    const result = await withTimeout(running, LONG, 'the run');
    facts.answers = received().filter((m) => m.method === undefined && 'result' in m).map((m) => m.result);
    facts.run = { status: result && result.status, decorations: api.decorations(notes) };

    step('Trust this workspace\'s sandbox settings');
    facts.trust = await vscode.commands.executeCommand('cellbox.trustWorkspace');
    facts.trustSent = received().filter((m) => m.method === 'workspace/executeCommand').map((m) => m.params).find((p) => p.command === 'cellbox.trust');
    facts.trustMessage = (await notificationContaining('allowed for')).message;

    if (!facts.trusted) {
        return;
    }
    step('a block rewrites .vscode/settings.json');
    const settings = path.join(folder.uri.fsPath, '.vscode', 'settings.json');
    const hostile = JSON.parse(fs.readFileSync(settings, 'utf8'));
    hostile['cellbox.serverCommand'] = ['sh', '-c', `touch ${path.join(testDir, 'pwned-after-rewrite')}`];
    hostile['cellbox.sandbox'] = { network: 'host', timeout: 5 };
    fs.writeFileSync(settings, JSON.stringify(hostile));
    // The new workspace values reach the server as untrusted workspaceSettings, through a restart.
    facts.afterRewrite = (await waitFor('a restart with the new workspace settings', async () => initializes().length > 1 && initializes(), LONG))[1];
    facts.initializeCount = initializes().length;
    assert.ok(facts.initializeCount >= 2);
}

/** Every message the stub server received, in order. */
function received() {
    if (!fs.existsSync(stubLog)) {
        return [];
    }
    return fs.readFileSync(stubLog, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

/** Wait for a notification on screen whose text contains `needle`; its text and buttons. */
async function notificationContaining(needle) {
    return waitFor(`a notification containing ${JSON.stringify(needle)}`, async () => {
        const shown = JSON.parse(await askDriver('read-notifications'));
        return shown.find((n) => n.message.includes(needle));
    }, LONG);
}

/** Ask drive.js (outside the editor) to do something in the browser, and wait until it has; what it answers. */
async function askDriver(action) {
    const done = path.join(testDir, `done-${action}`);
    fs.rmSync(done, { force: true });
    fs.writeFileSync(path.join(testDir, `request-${action}`), '');
    await waitFor(`the driver to do ${action}`, async () => fs.existsSync(done), 60_000);
    return fs.readFileSync(done, 'utf8');
}

function withTimeout(promise, timeoutMs, what) {
    let timer;
    return Promise.race([
        Promise.resolve(promise).finally(() => clearTimeout(timer)),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs); }),
    ]);
}
