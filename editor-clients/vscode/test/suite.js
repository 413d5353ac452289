// The editor-side test, run by VS Code's extension-test protocol inside a real
// VS Code (code-server): it drives the extension the way a user would, through
// its commands, and checks what a user would see. It writes what it saw to
// $CELLBOX_VSCODE_TEST_DIR/facts.json for the pytest side to check too, and
// asks the browser driver (drive.js) for key presses and a screenshot through
// request-/done- files in that folder.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');

const testDir = process.env.CELLBOX_VSCODE_TEST_DIR;
// A cold sandbox on a loaded 2-core machine can take a while; nothing here is a timing assertion.
const LONG = 180_000;

exports.run = async function run() {
    const facts = { steps: [] };
    let api;
    try {
        await scenario(facts, (found) => { api = found; });
    } catch (error) {
        facts.error = String(error && error.stack || error);
        throw error;
    } finally {
        facts.output = api ? api.outputText() : undefined;
        if (testDir) {
            fs.writeFileSync(path.join(testDir, 'facts.json'), JSON.stringify(facts, null, 2));
        }
    }
};

async function scenario(facts, share) {
    const step = (name) => {
        facts.steps.push(name);
        console.log(`cellbox-test: ${name}`);
    };
    const folder = vscode.workspace.workspaceFolders[0].uri;
    const notes = vscode.Uri.joinPath(folder, 'notes.md');
    const lines = fs.readFileSync(notes.fsPath, 'utf8').split('\n');
    const lineOf = (text) => {
        const line = lines.indexOf(text);
        assert.ok(line >= 0, `notes.md has no line ${JSON.stringify(text)}`);
        return line;
    };

    step('open notes.md');
    const editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(notes));
    const extension = vscode.extensions.getExtension('cellbox.cellbox');
    assert.ok(extension, 'the cellbox extension is not installed');
    const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, 60_000);
    share(api);
    facts.activated = true;

    step('wait for the server (its code lenses)');
    const lenses = await waitFor('code lenses from the server', async () => {
        const found = await vscode.commands.executeCommand('vscode.executeCodeLensProvider', notes);
        return found && found.length > 0 && found;
    }, LONG);
    facts.lenses = lenses.map((lens) => ({ line: lens.range.start.line, title: lens.command && lens.command.title, command: lens.command && lens.command.command }));

    const runAt = (line) => {
        editor.selection = new vscode.Selection(line, 0, line, 0);
        return vscode.commands.executeCommand('cellbox.runBlock');
    };

    step('run the first block');
    const first = await withTimeout(runAt(lineOf('print("hello from the sandbox")')), LONG, 'the first run');
    const firstEnd = lineOf('print(6 * 7)');
    facts.first = { status: first && first.status, decorations: api.decorations(notes), hover: api.hover(notes, firstEnd) };
    assert.strictEqual(first && first.status, 'ok', `first run: ${JSON.stringify(first)}`);
    assert.strictEqual(plain(api.decorations(notes))[firstEnd], '✓ 42 (+1 lines)');
    assert.match(api.hover(notes, firstEnd) || '', /hello from the sandbox\n42/);
    assert.match(api.outputText(), /hello from the sandbox\n42\n/);

    step('the hover over the result shows the whole output');
    const firstEndChar = editor.document.lineAt(firstEnd).range.end.character;
    editor.selection = new vscode.Selection(firstEnd, firstEndChar, firstEnd, firstEndChar);
    await vscode.window.showTextDocument(editor.document, { preserveFocus: false });
    await vscode.commands.executeCommand('editor.action.showHover');
    facts.hoverShown = await askDriver('read-hover');
    assert.match(facts.hoverShown, /hello from the sandbox\s+42/);

    step('stream a slow block');
    const streamEnd = lineOf('echo second');
    // Through the server's "▶ Run" lens this time, as a click would.
    const lens = lenses.find((l) => l.command && l.command.title === '▶ Run' && l.range.start.line === lineOf('echo first') - 1);
    assert.ok(lens, 'no "▶ Run" lens above the bash fence');
    const streaming = vscode.commands.executeCommand(lens.command.command, ...(lens.command.arguments || []));
    const seen = new Set();
    let done = false;
    streaming.then(() => { done = true; }, () => { done = true; });
    let outputWhileRunning = false;
    const runningTexts = () => [...seen].filter((text) => text.startsWith('⟳ running…') && text.includes('first'));
    // Watch until the running decoration has shown "first" and its clock has moved on at least once.
    await waitFor('a running decoration showing "first", then ticking', async () => {
        const text = api.decorations(notes)[streamEnd];
        if (text) {
            seen.add(text);
        }
        if (!done && runningTexts().length > 0) {
            // The log is written before the decoration, from the same notification.
            outputWhileRunning = outputWhileRunning || api.outputText().includes('first\n');
        }
        if (runningTexts().length >= 2) {
            return true;
        }
        if (done) {
            throw new Error(`the run ended before its decoration showed "first" and ticked while running; seen: ${JSON.stringify([...seen])}`);
        }
        return false;
    }, LONG);
    await askDriver('screenshot-running');
    const whileRunning = runningTexts()[0];
    facts.streaming = { whileRunning, outputWhileRunning };
    const streamed = await withTimeout(streaming, LONG, 'the streaming run');
    facts.streaming.seen = [...seen];
    facts.streaming.status = streamed && streamed.status;
    facts.streaming.final = api.decorations(notes)[streamEnd];
    assert.strictEqual(streamed && streamed.status, 'ok');
    assert.strictEqual(plain({ 0: facts.streaming.final })[0], '✓ second (+1 lines)');
    assert.ok(facts.streaming.outputWhileRunning, 'the output channel had "first" while the block ran');

    step('cancel a long block');
    const sleepEnd = lineOf('sleep 120');
    const sleeping = runAt(lineOf('echo about to sleep'));
    await waitFor('the long block to start', async () => (api.decorations(notes)[sleepEnd] || '').includes('about to sleep'), LONG);
    const cancelled = await vscode.commands.executeCommand('cellbox.cancelRun');
    const sleptResult = await withTimeout(sleeping, LONG, 'the cancelled run');
    facts.cancel = { cancelledRuns: cancelled, status: sleptResult && sleptResult.status, decoration: api.decorations(notes)[sleepEnd] };
    assert.strictEqual(cancelled, 1);
    assert.strictEqual(sleptResult && sleptResult.status, 'cancelled');
    assert.match(facts.cancel.decoration, /^⊘ cancelled/);

    step('a failing block');
    const failing = await withTimeout(runAt(lineOf('x = 1')), LONG, 'the failing run');
    const errorLine = lineOf('y = x / 0');
    const diagnostics = await waitFor('a cellbox diagnostic', async () => {
        const found = vscode.languages.getDiagnostics(notes).filter((d) => d.source === 'cellbox');
        return found.length > 0 && found;
    }, 60_000);
    facts.failure = {
        status: failing && failing.status,
        decoration: api.decorations(notes)[lineOf('print(y)')],
        diagnostics: diagnostics.map((d) => ({ line: d.range.start.line, message: d.message, severity: d.severity })),
        errorLine,
    };
    assert.strictEqual(failing && failing.status, 'error');
    assert.match(facts.failure.decoration, /^✗ exit 1 · \d+\.\d+ s · ZeroDivisionError: division by zero \(\+\d+ lines\)$/);
    assert.strictEqual(diagnostics[0].range.start.line, errorLine);
    assert.match(diagnostics[0].message, /ZeroDivisionError/);

    step('status bar after runs');
    facts.statusAfterRuns = await waitFor('the status bar to say the sandbox is ready', async () => /sandbox ready/.test(api.statusBarText()) && api.statusBarText(), 60_000);

    step('stop the sandbox');
    await vscode.commands.executeCommand('cellbox.stopSandbox');
    facts.statusAfterStop = api.statusBarText();
    assert.match(facts.statusAfterStop, /cellbox: sandbox stopped/);

    step('restart the sandbox');
    await vscode.commands.executeCommand('cellbox.restartSandbox');
    facts.statusAfterRestart = api.statusBarText();
    assert.match(facts.statusAfterRestart, /cellbox: sandbox ready/);

    step('Shift+Enter on the first block, pressed in the browser');
    editor.selection = new vscode.Selection(firstEnd, 0, firstEnd, 0);
    await vscode.window.showTextDocument(editor.document, { preserveFocus: false });
    const tries = await pressShiftEnter(api, 'notes');
    await waitFor('the run started by Shift+Enter to finish', async () => /■ ok[^\n]*\n$/.test(api.outputText()), LONG);
    facts.shiftEnter = { tries, decoration: api.decorations(notes)[firstEnd] };

    step('Shift+Enter in a # %% cell of a Python file');
    const cells = vscode.Uri.joinPath(folder, 'cells.py');
    const cellsEditor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(cells));
    cellsEditor.selection = new vscode.Selection(4, 0, 4, 0);
    facts.cellTries = await pressShiftEnter(api, 'cells');
    facts.cell = await waitFor('the second cell\'s result', async () => plain(api.decorations(cells))[4] === '✓ cell two' && plain(api.decorations(cells)), LONG);

    step('Run All on a file of two blocks');
    const all = vscode.Uri.joinPath(folder, 'all.md');
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(all));
    const allResult = await withTimeout(vscode.commands.executeCommand('cellbox.runAll'), LONG, 'Run All');
    facts.runAll = { blocks: allResult && allResult.blocks.length, decorations: plain(api.decorations(all)) };
    assert.deepStrictEqual(facts.runAll.decorations, { 1: '✓ one', 5: '✓ two' });

    step('a block that grew, run again, leaves no stale result inside it');
    // A line added at the top of the closing fence: the old result stays on
    // line 1, which is no longer the block's last; the block's extent says it is still inside.
    const allEditor = vscode.window.activeTextEditor;
    await allEditor.edit((edit) => edit.insert(new vscode.Position(2, 0), 'echo three\n'));
    allEditor.selection = new vscode.Selection(1, 0, 1, 0);
    await withTimeout(vscode.commands.executeCommand('cellbox.runBlock'), LONG, 'the grown block');
    facts.grown = plain(api.decorations(all));
    assert.deepStrictEqual(facts.grown, { 2: '✓ three (+1 lines)', 6: '✓ two' });
    await vscode.commands.executeCommand('undo');

    step('results follow lines added above them');
    // Opening other files replaced the first editor (preview tabs): use the one showing notes.md now.
    const notesEditor = await vscode.window.showTextDocument(editor.document);
    const beforeEdit = api.decorations(notes);
    await notesEditor.edit((edit) => edit.insert(new vscode.Position(1, 0), 'an added line\n'));
    const shifted = Object.fromEntries(Object.entries(beforeEdit).map(([line, text]) => [Number(line) + 1, text]));
    facts.edits = { beforeEdit, shifted: await waitFor('results to move down', async () => sameEntries(api.decorations(notes), shifted) && api.decorations(notes), 10_000) };
    await vscode.commands.executeCommand('undo');
    facts.edits.undone = await waitFor('results to move back', async () => sameEntries(api.decorations(notes), beforeEdit) && api.decorations(notes), 10_000);

    step('screenshot');
    notesEditor.selection = new vscode.Selection(0, 0, 0, 0);
    await vscode.commands.executeCommand('cellbox.showOutput');
    await askDriver('screenshot');
    facts.done = true;
}

/**
 * Press Shift+Enter in the browser until a run starts; how many presses it took.
 * A press can land before the editor has focus or before the context key that
 * scopes the binding has reached the window; a binding that is wrong never
 * starts a run, whatever the number of tries.
 */
async function pressShiftEnter(api, label) {
    const runs = () => (api.outputText().match(/^▶ /gm) || []).length;
    const before = runs();
    for (let attempt = 1; attempt <= 3; attempt++) {
        await sleep(500);
        await askDriver('shift-enter');
        try {
            await waitFor(`a run started by Shift+Enter in ${label}`, async () => runs() > before, 10_000);
            return attempt;
        } catch (error) {
            await askDriver(`debug-screenshot-${label}-${attempt}`);
        }
    }
    throw new Error(`Shift+Enter in ${label} started no run in 3 presses (screenshots in the test folder)`);
}

/** Ask drive.js (outside the editor) to do something in the browser, and wait until it has; what it answers. */
async function askDriver(action) {
    if (!testDir) {
        return;
    }
    const done = path.join(testDir, `done-${action}`);
    // An answer to an earlier request of the same action (shift-enter is asked again) is not this one's.
    fs.rmSync(done, { force: true });
    fs.writeFileSync(path.join(testDir, `request-${action}`), '');
    await waitFor(`the driver to do ${action}`, async () => fs.existsSync(done), 60_000);
    return fs.readFileSync(done, 'utf8');
}

/** Decorations without their times, which vary: "✓ 0.21 s · 42" is "✓ 42". */
function plain(decorations) {
    return Object.fromEntries(Object.entries(decorations).map(([line, text]) => [line, text.replace(/ \d+\.\d+ s( ·)?/, '')]));
}

function sameEntries(a, b) {
    return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}


function withTimeout(promise, timeoutMs, what) {
    return Promise.race([
        Promise.resolve(promise),
        sleep(timeoutMs).then(() => { throw new Error(`timed out waiting for ${what}`); }),
    ]);
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
