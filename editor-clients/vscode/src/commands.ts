// Owns the palette commands and the context keys their keybindings use.
import * as path from 'path';
import * as vscode from 'vscode';
import { ResponseError } from 'vscode-languageclient/node';
import { Clients } from './clients';
import { blockAt, blocksOf } from './cursorBlocks';
import { DisplayView } from './displayView';
import { InlineResults } from './inlineResults';
import { OutputView } from './outputView';
import { ExecuteArgument, TrustResult } from './protocol';
import { RunLog } from './runLog';
import { Runs } from './runs';
import { SandboxStatus, activeFolder } from './sandboxStatus';
import { Command } from './vocabulary';

export const RUN_FROM_LENS = 'cellbox.runFromLens';

// Shift+Enter belongs to cellbox only where the cursor is in a block the
// server found (the context key cellbox.inBlock, from its lenses): elsewhere
// it stays the editor's (a new line in Markdown prose). In Python files the
// Python and Jupyter extensions bind it too: when either is installed cellbox
// leaves it to them there and takes Ctrl+Alt+Enter, which works everywhere.
const PYTHON_EXTENSIONS = ['ms-python.python', 'ms-toolsai.jupyter'];

export function registerCommands(
    clients: Clients,
    runs: Runs,
    log: RunLog,
    status: SandboxStatus,
    display: InlineResults,
    beside: OutputView,
    displays: DisplayView,
): vscode.Disposable[] {
    const sandboxCommand = async (command: string, verb: string) => {
        const folder = activeFolder() ?? (await vscode.window.showWorkspaceFolderPick({ placeHolder: `Folder whose sandbox to ${verb}` }));
        if (folder === undefined) {
            return undefined;
        }
        status.setStopped(folder, command === Command.STOP);
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
    // Session mode: a new kernel for the document being edited, its state
    // gone; the other documents' sessions and the sandbox go on.
    const restartSession = async () => {
        const editor = vscode.window.activeTextEditor;
        const file = editor?.document.uri;
        const folder = file && vscode.workspace.getWorkspaceFolder(file);
        if (file === undefined || folder === undefined) {
            void vscode.window.showErrorMessage('cellbox: open the file whose session to restart (a file of a workspace folder).');
            return undefined;
        }
        const name = path.basename(file.fsPath);
        try {
            const result = await vscode.window.withProgress(
                { location: vscode.ProgressLocation.Window, title: `cellbox: restarting the session of ${name}` },
                () => clients.send(folder, Command.RESTART, { workspace: folder.uri.fsPath, session: runs.sessionOf(file) }),
            );
            if (result !== undefined) {
                void vscode.window.showInformationMessage(`cellbox: restarted the session of ${name}: its variables are gone, the next block starts afresh.`);
            }
            return result;
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            // -32602: the server knows no such session (script mode, or nothing ran yet).
            const hint = error instanceof ResponseError && error.code === -32602
                ? ` (${name} has no session yet: one starts with its first Python block run in session mode, mode = "session" in cellbox.toml)`
                : '';
            void vscode.window.showErrorMessage(`cellbox: ${message}${hint}`);
            return undefined;
        } finally {
            await status.refresh(folder);
        }
    };
    const updateContext = () => {
        const editor = vscode.window.activeTextEditor;
        const inBlock =
            editor !== undefined &&
            blockAt(blocksOf(clients.lensesOf(editor.document.uri)), editor.selection.active.line) !== undefined;
        const pythonTakesShiftEnter = PYTHON_EXTENSIONS.some((id) => vscode.extensions.getExtension(id) !== undefined);
        void vscode.commands.executeCommand('setContext', 'cellbox.inBlock', inBlock);
        void vscode.commands.executeCommand('setContext', 'cellbox.pythonTakesShiftEnter', pythonTakesShiftEnter);
        void vscode.commands.executeCommand('setContext', 'cellbox.running', runs.isRunning());
    };
    const runHere = (editor: vscode.TextEditor) => {
        const selection = editor.selection;
        const uri = editor.document.uri.toString();
        const argument: ExecuteArgument = selection.isEmpty
            ? { uri, position: { line: selection.active.line, character: selection.active.character } }
            : { uri, range: { start: { line: selection.start.line, character: 0 }, end: selection.end } };
        const what = selection.isEmpty ? `block at line ${selection.active.line + 1}` : `lines ${selection.start.line + 1}-${selection.end.line + 1}`;
        return runs.execute(argument, what);
    };
    updateContext();
    return [
        vscode.commands.registerCommand('cellbox.runBlock', () => {
            const editor = vscode.window.activeTextEditor;
            return editor && runHere(editor);
        }),
        // Jupyter's Shift+Enter: run the block, and move on to the next one at once (the run goes on).
        vscode.commands.registerCommand('cellbox.runBlockAndAdvance', () => {
            const editor = vscode.window.activeTextEditor;
            if (editor === undefined) {
                return undefined;
            }
            const run = runHere(editor);
            const blocks = blocksOf(clients.lensesOf(editor.document.uri));
            const here = blockAt(blocks, editor.selection.end.line);
            const next = here && blocks.find((block) => block.header > here.last);
            if (next !== undefined) {
                const position = new vscode.Position(next.code, 0);
                editor.selection = new vscode.Selection(position, position);
                editor.revealRange(new vscode.Range(next.header, 0, next.last, 0));
            }
            return run;
        }),
        vscode.commands.registerCommand('cellbox.clearResults', () => {
            const editor = vscode.window.activeTextEditor;
            if (editor !== undefined) {
                display.clear(editor.document.uri);
            }
        }),
        vscode.commands.registerCommand('cellbox.showBlockOutput', () => {
            const editor = vscode.window.activeTextEditor;
            return editor && beside.show(editor.document.uri, true);
        }),
        vscode.commands.registerCommand('cellbox.showDisplays', () => {
            const editor = vscode.window.activeTextEditor;
            return editor && displays.show(editor.document.uri, true);
        }),
        vscode.commands.registerCommand('cellbox.restartSession', restartSession),
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
        vscode.window.onDidChangeTextEditorSelection(updateContext),
        vscode.extensions.onDidChange(updateContext),
        clients.onDidChangeLenses(updateContext),
        vscode.workspace.onDidChangeTextDocument((change) => {
            if (change.document === vscode.window.activeTextEditor?.document) {
                updateContext();
            }
        }),
        runs.onDidChange(updateContext),
    ];
}
