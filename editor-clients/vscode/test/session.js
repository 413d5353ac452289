// The editor-side test of issue 14's VS Code items, run inside code-server
// against the real `cellbox serve` in a workspace with mode = "session": a
// variable set by one block is there in the next (one request each), a
// matplotlib figure and a pandas DataFrame are drawn beside the code (read
// back from the webview in the browser), a figure as soon as it comes, while
// its block still runs, an HTML output with its script not run; the status bar says the session's
// state, and cellbox: Restart Session starts it afresh. Each check is recorded
// in facts.json (a failed one does not stop the next), and the suite fails if
// any did.
const assert = require('assert');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');
const { askDriver, notifications, sleep, withTimeout, runScenario } = require('./askDriver');

const LONG = 240_000;

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
    const doc = vscode.Uri.joinPath(folder, 'analysis.md');
    let editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(doc));
    const extension = vscode.extensions.getExtension('cellbox.cellbox');
    const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, 60_000);
    await waitFor('code lenses from the server', async () => {
        const found = await vscode.commands.executeCommand('vscode.executeCodeLensProvider', doc);
        return found && found.length > 0;
    }, LONG);
    const lineOf = (text) => editor.document.getText().split('\n').indexOf(text);
    const plain = (text) => (text || '').replace(/ \d+\.\d+ s( ·)?/, '');
    const runAt = async (text) => {
        editor = await vscode.window.showTextDocument(editor.document, { preserveFocus: false, viewColumn: vscode.ViewColumn.One });
        const line = lineOf(text);
        editor.selection = new vscode.Selection(line, 0, line, 0);
        return withTimeout(vscode.commands.executeCommand('cellbox.runBlock'), LONG, `the block at "${text}"`);
    };
    // The messages on screen once one matches `pattern` (a toast shows a moment after the command returns).
    const messagesWith = (pattern) => waitFor(`a notification matching ${pattern}`, async () => {
        const messages = (await notifications()).map((n) => n.message);
        return messages.some((m) => pattern.test(m)) && messages;
    }, 10_000).catch(async () => (await notifications()).map((n) => n.message));
    const statusWith = (pattern) => waitFor(`the status bar to match ${pattern}`, async () => pattern.test(api.statusBarText()) && api.statusBarText(), 15_000)
        .catch(() => api.statusBarText());

    await check('a variable set by one block is there in the next', async () => {
        const first = await runAt('n = 41');
        const second = await runAt('print(greeting, n)');
        facts.state = {
            first: first && first.blocks[0],
            second: second && { status: second.status, output: second.blocks[0].output, session: second.blocks[0].session, stateLost: second.blocks[0].stateLost },
            decoration: api.decorations(doc)[lineOf('print(greeting, n)')],
            sessionOf: api.sessionOf(doc),
        };
        assert.strictEqual(facts.state.second.status, 'ok', facts.state.second.output);
        assert.strictEqual(facts.state.second.output, 'kept 42\n');
        assert.strictEqual(facts.state.second.session, doc.fsPath);
        assert.strictEqual(plain(facts.state.decoration), '✓ kept 42');
    });

    await check('the status bar says the session is idle', async () => {
        facts.statusIdle = await statusWith(/session idle/);
        assert.match(facts.statusIdle, /cellbox: session idle/);
    });

    await check('a figure and a DataFrame are drawn beside the code, and named on their blocks', async () => {
        const plot = await runAt('plt.show()');
        const table = await runAt('frame');
        const rich = (result) => result && result.blocks[0].displays.map((d) => Object.keys(d.data).sort());
        facts.rich = {
            plot: { status: plot && plot.status, displays: rich(plot), decoration: api.decorations(doc)[lineOf('plt.show()')] },
            table: { status: table && table.status, displays: rich(table), decoration: api.decorations(doc)[lineOf('frame')] },
            beside: (api.besideText(doc) || ''),
        };
        const shown = await waitFor('the displays page to show an image and a table', async () => {
            const page = api.displays(doc);
            return page && page.visible && /<img /.test(page.html) && /<table/.test(page.html) && page;
        }, 15_000).catch(() => api.displays(doc));
        facts.rich.page = shown && { visible: shown.visible, hasImage: /<img alt="image\/png" src="data:image\/png;base64,iVBOR/.test(shown.html), hasTable: /<table/.test(shown.html) };
        facts.webviews = await waitFor('the webview in the browser to draw them', async () => {
            const found = JSON.parse(await askDriver('read-webviews'));
            return found.find((page) => page.images.length > 0 && page.tables.length > 0);
        }, 30_000).catch(async () => JSON.parse(await askDriver('read-webviews')));
        assert.strictEqual(facts.rich.plot.status, 'ok');
        assert.ok(facts.rich.plot.displays.some((types) => types.includes('image/png')), 'no PNG among the figure\'s displays');
        assert.match(plain(facts.rich.plot.decoration), /^✓ ▨ 1 image · <Figure size/);
        assert.strictEqual(facts.rich.table.status, 'ok');
        assert.match(plain(facts.rich.table.decoration), /^✓ ▦ 1 table · /);
        assert.deepStrictEqual(facts.rich.page, { visible: true, hasImage: true, hasTable: true });
        const page = facts.webviews;
        assert.ok(page && page.images.length === 1 && page.images[0].width > 100, 'the webview drew no image');
        assert.match((page.tables[0] || ''), /Oslo[\s\S]*Lima[\s\S]*Quito/);
        assert.strictEqual(page.headings.length, 2);
        assert.match(page.headings[0], /^block 3 · lines \d+-\d+ · ✓ \d+\.\d+ s · ▨ 1 image$/);
        assert.match(page.headings[1], /^block 4 · lines \d+-\d+ · ✓ \d+\.\d+ s · ▦ 1 table$/);
        facts.statusAfterRich = await statusWith(/session idle/);
        assert.match(facts.statusAfterRich, /cellbox: session idle/);
        editor = await vscode.window.showTextDocument(editor.document, { preserveFocus: false, viewColumn: vscode.ViewColumn.One });
        editor.selection = new vscode.Selection(0, 0, 0, 0);
        await sleep(1500);
        await askDriver('screenshot-session');
    });

    await check('a figure is drawn beside while its block still runs', async () => {
        const running = runAt('time.sleep(4)');
        const count = () => ((api.displays(doc) || { html: '' }).html.match(/<img /g) || []).length;
        await waitFor('the second figure beside, before the block ends', async () => count() === 2, LONG);
        facts.live = { whileRunning: { images: count(), decoration: api.decorations(doc)[lineOf('time.sleep(4)')] } };
        const result = await withTimeout(running, LONG, 'the block that waits');
        facts.live.after = { status: result && result.status, decoration: api.decorations(doc)[lineOf('time.sleep(4)')], images: count() };
        assert.match(facts.live.whileRunning.decoration || '', /^⟳ running…/);
        assert.strictEqual(facts.live.after.status, 'ok');
        assert.match(plain(facts.live.after.decoration), /^✓ ▨ 1 image · drawn, now waiting/);
        assert.strictEqual(facts.live.after.images, 2);
    });

    await check('an HTML output is drawn, its script and event handler do not run', async () => {
        const result = await runAt('HTML(\'\'\'<b>bold from the kernel</b><script>document.title = "script ran"</script>');
        facts.scripts = { status: result && result.status };
        const found = await waitFor('the HTML drawn in the webview', async () => {
            const pages = JSON.parse(await askDriver('read-webviews'));
            return pages.find((page) => page.displays.some((text) => text.includes('bold from the kernel')));
        }, 30_000).catch(() => undefined);
        await sleep(1000);
        const pages = JSON.parse(await askDriver('read-webviews'));
        facts.scripts.page = pages.find((page) => page.displays.some((text) => text.includes('bold from the kernel'))) || found;
        facts.scripts.pages = pages.map((page) => ({ title: page.title, displays: page.displays.map((text) => text.slice(0, 80)) }));
        facts.scripts.html = ((api.displays(doc) || { html: '' }).html.match(/<section[^]*?<\/section>/g) || []).slice(-1)[0];
        assert.strictEqual(facts.scripts.status, 'ok');
        assert.ok(facts.scripts.page, 'the HTML output is not in the webview');
        assert.strictEqual(facts.scripts.page.title, 'analysis.md · cellbox displays');
    });

    await check('the text output beside says the blocks share a session, and where the figures are', async () => {
        await vscode.commands.executeCommand('cellbox.showBlockOutput');
        const text = await waitFor('the output beside, the last block ended', async () => /── block 5 [^\n]*✓/.test(api.besideText(doc) || '') && api.besideText(doc), 10_000)
            .catch(() => api.besideText(doc) || '');
        facts.besideText = text;
        assert.match(text, /^cellbox output of analysis\.md \(Python blocks share the session of this file, which keeps their state/);
        assert.match(text, /\[▨ 1 image: drawn in analysis\.md · cellbox displays\]/);
        assert.match(text, /\[▦ 1 table: drawn in analysis\.md · cellbox displays\]/);
    });

    await check('cellbox: Restart Session: the state is gone, the next block says so', async () => {
        editor = await vscode.window.showTextDocument(editor.document, { preserveFocus: false, viewColumn: vscode.ViewColumn.One });
        await vscode.commands.executeCommand('notifications.clearAll');
        const restarted = await withTimeout(vscode.commands.executeCommand('cellbox.restartSession'), LONG, 'the session restart');
        facts.restart = { result: restarted, notifications: await messagesWith(/restarted the session/) };
        const again = await runAt('print(greeting, n)');
        facts.restart.after = again && { status: again.status, output: again.blocks[0].output };
        facts.restart.status = await statusWith(/session idle/);
        assert.ok(restarted, 'the restart returned nothing');
        assert.ok(facts.restart.notifications.some((m) => /restarted the session of analysis\.md/.test(m)), 'no message said the session restarted');
        assert.strictEqual(facts.restart.after.status, 'error');
        assert.match(facts.restart.after.output, /NameError: name 'n' is not defined/);
        assert.match(facts.restart.status, /cellbox: session idle/);
    });

    await check('Restart Session on a file that has no session yet says so', async () => {
        const other = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder, 'other.md')));
        await vscode.commands.executeCommand('notifications.clearAll');
        facts.noSession = { result: await withTimeout(vscode.commands.executeCommand('cellbox.restartSession'), LONG, 'the restart of no session') };
        facts.noSession.notifications = await messagesWith(/no session named/);
        assert.strictEqual(facts.noSession.result, undefined);
        assert.ok(facts.noSession.notifications.some((m) => m.includes(`there is no session named '${other.document.uri.fsPath}'`) && m.includes('other.md has no session yet')),
            'no message said there is no such session');
    });

    facts.failed = failed;
    if (failed.length > 0) {
        throw new Error(`failed: ${failed.join('; ')}`);
    }
});
