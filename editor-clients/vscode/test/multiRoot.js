// The editor-side test for a multi-root workspace: each folder gets its own
// `cellbox serve` and its own sandbox, and the two servers' commands do not
// collide; each folder's own cellbox.sandbox setting reaches its server.
// Facts go to $CELLBOX_VSCODE_TEST_DIR/facts.json, as in suite.js.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { waitFor } = require('./waitFor');

const testDir = process.env.CELLBOX_VSCODE_TEST_DIR;
const LONG = 180_000;

exports.run = async function run() {
    const facts = { folders: {} };
    try {
        const extension = vscode.extensions.getExtension('cellbox.cellbox');
        for (const folder of vscode.workspace.workspaceFolders) {
            const notes = vscode.Uri.joinPath(folder.uri, 'notes.md');
            const editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(notes));
            const api = await waitFor('the extension to activate', async () => extension.isActive && extension.exports, 60_000);
            await waitFor(`code lenses in ${folder.name}`, async () => {
                const lenses = await vscode.commands.executeCommand('vscode.executeCodeLensProvider', notes);
                return lenses && lenses.length > 0;
            }, LONG);
            editor.selection = new vscode.Selection(1, 0, 1, 0);
            const result = await vscode.commands.executeCommand('cellbox.runBlock');
            const status = await waitFor(`the status bar for ${folder.name}`, async () => /sandbox ready/.test(api.statusBarText()) && api.statusBarText(), 60_000);
            facts.folders[folder.name] = { status: result && result.status, decorations: api.decorations(notes), statusBar: status };
        }
        for (const folder of vscode.workspace.workspaceFolders) {
            assert.deepStrictEqual(Object.keys(facts.folders[folder.name].decorations), ['2']);
            assert.match(facts.folders[folder.name].decorations[2], new RegExp(`^✓ \\d+\\.\\d+ s · hello ${folder.name} \\(\\+1 lines\\)$`));
        }
    } catch (error) {
        facts.error = String(error && error.stack || error);
        throw error;
    } finally {
        if (testDir) {
            fs.writeFileSync(path.join(testDir, 'facts.json'), JSON.stringify(facts, null, 2));
        }
    }
};
