// Owns the palette commands and the context keys their keybindings use.
import * as vscode from 'vscode';
import { Clients } from './clients';
import { ExecuteArgument, TrustResult } from './protocol';
import { RunLog } from './runLog';
import { Runs } from './runs';
import { SandboxStatus, activeFolder } from './sandboxStatus';
import { Command } from './vocabulary';

export const RUN_FROM_LENS = 'cellbox.runFromLens';

// Shift+Enter belongs to cellbox in Markdown, but in Python and shell files
// only where `# %%` cells show they are meant to run cell by cell (elsewhere
// it stays the Python extension's "run selection"). This only scopes the key:
// the blocks themselves are the server's to find.
const CELL_MARKER = /^#\s?%%/m;

export function registerCommands(clients: Clients, runs: Runs, log: RunLog, status: SandboxStatus): vscode.Disposable[] {
    const sandboxCommand = async (command: string, verb: string) => {
        const folder = activeFolder() ?? (await vscode.window.showWorkspaceFolderPick({ placeHolder: `Folder whose sandbox to ${verb}` }));
        if (folder === undefined) {
            return undefined;
        }
        try {
            return await vscode.window.withProgress(
                { location: vscode.ProgressLocation.Window, title: `cellbox: ${verb} sandbox` },
                () => clients.send(folder, command, { workspace: folder.uri.fsPath }),
            );
        } catch (error) {
            void vscode.window.showErrorMessage(`cellbox: ${error instanceof Error ? error.message : String(error)}`);
            return undefined;
        } finally {
            await status.refresh(folder);
        }
    };
    // The user's approval of what the folder's cellbox.toml / pyproject.toml
    // ask for that loosens the sandbox, which the server ignores until then.
    const trustWorkspace = async () => {
        const folder = activeFolder() ?? (await vscode.window.showWorkspaceFolderPick({ placeHolder: 'Folder whose sandbox settings to allow' }));
        if (folder === undefined) {
            return undefined;
        }
        try {
            const result = await clients.send<TrustResult>(folder, Command.TRUST, { workspace: folder.uri.fsPath });
            if (result !== undefined) {
                void vscode.window.showInformationMessage(
                    result.settings.length === 0
                        ? `cellbox: ${result.workspace} asks for no settings that loosen the sandbox: nothing to allow.`
                        : `cellbox: allowed for ${result.workspace}: ${result.settings.join(', ')} (from ${result.files.join(', ')}).`,
                );
            }
            return result;
        } catch (error) {
            void vscode.window.showErrorMessage(`cellbox: ${error instanceof Error ? error.message : String(error)}`);
            return undefined;
        }
    };
    const updateContext = () => {
        const document = vscode.window.activeTextEditor?.document;
        const cellFile = document !== undefined && ['python', 'shellscript'].includes(document.languageId) && CELL_MARKER.test(document.getText());
        void vscode.commands.executeCommand('setContext', 'cellbox.cellFile', cellFile);
        void vscode.commands.executeCommand('setContext', 'cellbox.running', runs.isRunning());
    };
    updateContext();
    return [
        vscode.commands.registerCommand('cellbox.runBlock', () => {
            const editor = vscode.window.activeTextEditor;
            if (editor === undefined) {
                return undefined;
            }
            const selection = editor.selection;
            const uri = editor.document.uri.toString();
            const argument: ExecuteArgument = selection.isEmpty
                ? { uri, position: { line: selection.active.line, character: selection.active.character } }
                : { uri, range: { start: { line: selection.start.line, character: 0 }, end: selection.end } };
            const what = selection.isEmpty ? `block at line ${selection.active.line + 1}` : `lines ${selection.start.line + 1}-${selection.end.line + 1}`;
            return runs.execute(argument, what);
        }),
        vscode.commands.registerCommand('cellbox.runAll', () => {
            const editor = vscode.window.activeTextEditor;
            return editor && runs.execute({ uri: editor.document.uri.toString(), all: true }, 'all blocks');
        }),
        vscode.commands.registerCommand(RUN_FROM_LENS, (argument: ExecuteArgument) =>
            runs.execute(argument, argument.all ? 'all blocks' : `block at line ${(argument.position?.line ?? 0) + 1}`),
        ),
        vscode.commands.registerCommand('cellbox.cancelRun', () => runs.cancel(activeFolder())),
        vscode.commands.registerCommand('cellbox.restartSandbox', () => sandboxCommand(Command.RESTART, 'restart')),
        vscode.commands.registerCommand('cellbox.stopSandbox', () => sandboxCommand(Command.STOP, 'stop')),
        vscode.commands.registerCommand('cellbox.showOutput', () => log.channel.show(true)),
        vscode.commands.registerCommand('cellbox.trustWorkspace', trustWorkspace),
        vscode.window.onDidChangeActiveTextEditor(updateContext),
        vscode.workspace.onDidChangeTextDocument((change) => {
            if (change.document === vscode.window.activeTextEditor?.document) {
                updateContext();
            }
        }),
        runs.onDidChange(updateContext),
    ];
}
