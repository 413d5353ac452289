// The editor-side test of issue 13's VS Code items, run inside code-server
// against the real `cellbox serve`: Shift+Enter only in blocks, and running
// then moving on; the sandbox's state in words; a block's whole output beside
// its code; results that follow lines typed above a running block, with
// nothing left behind; Clear Results. Each check is recorded in facts.json
// (a failed one does not stop the next), and the suite fails if any did.
const assert = require('assert');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');
const { askDriver, notifications, sleep, withTimeout, runScenario } = require('./askDriver');

const LONG = 180_000;

exports.run = () => runScenario(async (facts) => {
    facts.checks = {};
    const failed = [];
    const check = async (name, body) => {
        facts.steps.push(name);
        console.log(`cellbox-test: ${name}`);
        try {
            await body();
            facts.checks[name] = 'ok';
        } catch (error) {
            facts.checks[name] = String((error && error.stack) || error);
            failed.push(name);
        }
    };
    const folder = vscode.workspace.workspaceFolders[0].uri;
    const doc = vscode.Uri.joinPath(folder, 'doc.md');
    let editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(doc));
    const extension = vscode.extensions.getExtension('cellbox.cellbox');
    const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, 60_000);
    await waitFor('code lenses from the server', async () => {
        const found = await vscode.commands.executeCommand('vscode.executeCodeLensProvider', doc);
        return found && found.length > 0;
    }, LONG);
    const lineOf = (text) => editor.document.getText().split('\n').indexOf(text);
    const runs = () => (api.outputText().match(/^▶ /gm) || []).length;
    const focusAt = async (line, character = 0) => {
        editor = await vscode.window.showTextDocument(editor.document, { preserveFocus: false, viewColumn: vscode.ViewColumn.One });
        editor.selection = new vscode.Selection(line, character, line, character);
        // Let the context keys the bindings read reach the window.
        await sleep(1000);
    };
    const cursorAt = async (line) => {
        editor = await vscode.window.showTextDocument(editor.document, {
            preserveFocus: false, viewColumn: vscode.ViewColumn.One, selection: new vscode.Range(line, 0, line, 0),
        });
        await sleep(300);
    };
    const plain = (decorations) => Object.fromEntries(Object.entries(decorations).map(([line, text]) => [line, text.replace(/ \d+\.\d+ s( ·)?/, '')]));

    await check('Shift+Enter in prose types a new line, runs nothing and says nothing', async () => {
        const lines = editor.document.lineCount;
        await focusAt(0, editor.document.lineAt(0).text.length);
        await askDriver('shift-enter');
        await sleep(2000);
        facts.prose = { linesBefore: lines, linesAfter: editor.document.lineCount, line1: editor.document.lineAt(1).text, runs: runs(), notifications: await notifications() };
        if (editor.document.lineCount !== lines) {
            await vscode.commands.executeCommand('undo');
        }
        assert.strictEqual(facts.prose.linesAfter, lines + 1, 'Shift+Enter typed no new line');
        assert.strictEqual(facts.prose.runs, 0, 'Shift+Enter in prose started a run');
        assert.deepStrictEqual(facts.prose.notifications.filter((n) => /runnable block/.test(n.message)), []);
    });
    await vscode.commands.executeCommand('notifications.clearAll');

    await check('Shift+Enter in a block runs it and moves to the next block', async () => {
        await focusAt(lineOf('print("one")'));
        const before = runs();
        await askDriver('shift-enter');
        await waitFor('a run started by Shift+Enter', async () => runs() > before, 10_000);
        facts.advance = { cursor: editor.selection.active.line, expected: lineOf('echo start') };
        await waitFor('the run to end', async () => /■ [^\n]*\n$/.test(api.outputText()), LONG);
        facts.advance.decoration = api.decorations(doc)[lineOf('print("one")')];
        assert.strictEqual(facts.advance.cursor, facts.advance.expected, 'the cursor did not move to the next block');
        assert.match(facts.advance.decoration || '', /^✓ \d+\.\d+ s · one$/);
    });

    await check('the status bar says the sandbox is ready', async () => {
        facts.statusIdle = await waitFor('the status after the run', async () => /sandbox ready/.test(api.statusBarText()) && api.statusBarText(), 10_000)
            .catch(() => api.statusBarText());
        assert.match(facts.statusIdle, /cellbox: sandbox ready/);
    });

    await check('a failed block: its summary says what failed, its whole output is beside the code', async () => {
        const failing = await withTimeout(runAt(lineOf('print(undefined_name)')), LONG, 'the failing run');
        const line = lineOf('print(undefined_name)');
        facts.failure = { status: failing && failing.status, decoration: api.decorations(doc)[line] };
        // Until its heading says how the block ended: the traceback itself
        // streams in while the heading still says running (the view redraws
        // at most every UPDATE_MS).
        facts.failure.beside = await besideWith(/lines 16-17 · ✗ exit 1[^\n]*\n[\s\S]*NameError/);
        assert.match(facts.failure.decoration || '', /^✗ exit 1 · \d+\.\d+ s · NameError: name 'undefined_name' is not defined/);
        const beside = facts.failure.beside || '';
        assert.match(beside, /── (block 3 · )?lines 16-17 · ✗ exit 1 · \d+\.\d+ s\nTraceback \(most recent call last\):\n[\s\S]*NameError: name 'undefined_name' is not defined\n/);
        assert.match(beside, /── (block 1 · )?line 4 · ✓ \d+\.\d+ s\none\n/);
        await focusAt(0);
        await askDriver('screenshot-output');
    });

    await check('after Stop, the status bar says the sandbox is stopped', async () => {
        await vscode.commands.executeCommand('cellbox.stopSandbox');
        facts.statusStopped = api.statusBarText();
        assert.match(facts.statusStopped, /cellbox: sandbox stopped/);
    });

    // The bash block: "start", four seconds, "done"; the sandbox is stopped, so
    // the run starts it first: lines are typed both before the block starts
    // and while it runs.
    await check('lines typed above a running block: its result lands on it, nothing left behind', async () => {
        const startLine = lineOf('echo start');
        const endLine = lineOf('echo done');
        await focusAt(0);
        const running = runAt(startLine);
        await sleep(200);
        // Asked now, run after the bash block: the server's lines for it are the document's before the typing.
        const queued = runAt(lineOf('print(undefined_name)'));
        await sleep(200);
        // The typing goes where the window's cursor is: put it there, focused,
        // and give the window a moment to have it (runAt moved it just before).
        await cursorAt(0);
        await askDriver('type', 'Typed while it started.\n');
        await waitFor('the block to print "start"', async () => /^start$/m.test(api.outputText()), LONG);
        facts.statusRunning = await waitFor('the status bar to name the running block', async () => /running (block 2|lines 11-13) · /.test(api.statusBarText()) && api.statusBarText(), 3000)
            .catch(() => api.statusBarText());
        facts.besideRunning = await besideWith(/lines 11-13 · ⟳ running…\nstart\n/);
        editor.selection = new vscode.Selection(1, 0, 1, 0);  // after the first line typed
        await askDriver('type', '\nAnd one more line.\n');
        const result = await withTimeout(running, LONG, 'the run edited above');
        facts.queued = await withTimeout(queued, LONG, 'the run asked before the edit, started after it').then((r) => r && r.status);
        await sleep(500);
        facts.editedText = editor.document.getText();  // for the report, when a check below fails
        const added = lineOf('echo done') - endLine;
        facts.edited = { status: result && result.status, added, decorations: api.decorations(doc), beside: await besideWith(/lines 13-15 · ✓[\s\S]*lines 19-20 · ✗ exit 1 · \d+\.\d+ s\nTraceback/) };
        facts.headers = (api.outputText().match(/^── .*$/gm) || []).slice(-2);
        assert.strictEqual(added, 3, 'the typing did not add three lines above');
        const shown = plain(facts.edited.decorations);
        assert.deepStrictEqual(Object.keys(shown).map(Number).sort((a, b) => a - b),
            [lineOf('print("one")'), lineOf('echo done'), lineOf('print(undefined_name)')], 'a result on a line that is no block\'s last');
        assert.strictEqual(shown[lineOf('print("one")')], '✓ one');
        assert.strictEqual(shown[lineOf('echo done')], '✓ done (+1 lines)');
        assert.match(shown[lineOf('print(undefined_name)')], /^✗ exit 1 · NameError: name 'undefined_name' is not defined/);
        assert.match(facts.headers[1] || '', /doc\.md:19-20$/, 'the channel names the queued block\'s lines of before the edit');
        assert.doesNotMatch(facts.edited.beside, /lines 16-17/);
        await askDriver('screenshot-edited');
    });

    await check('while a block runs, the status bar says which and for how long; its output grows beside', async () => {
        assert.match(facts.statusRunning || '', /cellbox: running (block 2|lines 11-13) · \d+\.\d s/);
        assert.match(facts.besideRunning || '', /── (block 2 · )?lines 11-13 · ⟳ running…\nstart\n/);
    });

    await check('run again after the edit: the log and the output beside name the lines the block is on now', async () => {
        const result = await withTimeout(runAt(lineOf('sleep 4')), LONG, 'the run after the edit');
        facts.rerun = { status: result && result.status, decorations: api.decorations(doc), beside: await besideWith(/lines 13-15 · ✓/) };
        const headers = api.outputText().match(/^── .*$/gm) || [];
        facts.rerun.header = headers[headers.length - 1];
        assert.match(facts.rerun.header, /doc\.md:13-15$/);
        assert.strictEqual(Object.keys(facts.rerun.decorations).length, 3, 'one result per block');
        assert.match(facts.rerun.beside || '', /── (block 2 · )?lines 13-15 · ✓ /);
        assert.doesNotMatch(facts.rerun.beside || '', /lines 10-12/);
    });

    await check('cellbox: Clear Results takes every result away', async () => {
        await vscode.commands.executeCommand('cellbox.clearResults');
        facts.cleared = { decorations: api.decorations(doc), beside: await besideWith(/No results/) };
        assert.deepStrictEqual(facts.cleared.decorations, {});
        assert.doesNotMatch(facts.cleared.beside || '', /──/);
    });

    facts.failed = failed;
    if (failed.length > 0) {
        throw new Error(`failed: ${failed.join('; ')}`);
    }

    /** The output beside the code once it matches `pattern` (or as it is after 10 s). */
    async function besideWith(pattern) {
        const text = () => (api.besideText && api.besideText(doc)) || '';
        return waitFor(`the output beside to match ${pattern}`, async () => pattern.test(text()) && text(), 10_000).catch(text);
    }

    function runAt(line) {
        editor.selection = new vscode.Selection(line, 0, line, 0);
        return vscode.commands.executeCommand('cellbox.runBlock');
    }
});
