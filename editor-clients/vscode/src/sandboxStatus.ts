// Owns the status bar item: the state of the sandbox of the folder being
// edited, as the server's cellbox.status reports it.
import * as path from 'path';
import * as vscode from 'vscode';
import { Clients } from './clients';
import { StatusResult } from './protocol';
import { Command, ContainerState } from './vocabulary';

const WORDS: Record<string, string> = { [ContainerState.ABSENT]: 'no sandbox' };

export class SandboxStatus implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem('cellbox.sandbox', vscode.StatusBarAlignment.Left, 0);
    private readonly subscriptions: vscode.Disposable[] = [];
    /** Answers can come back out of order; only the latest request's is shown. */
    private generation = 0;

    constructor(private readonly clients: Clients) {
        this.item.name = 'cellbox sandbox';
        this.item.command = 'cellbox.showOutput';
        this.subscriptions.push(
            vscode.window.onDidChangeActiveTextEditor(() => {
                // Looking at a file is no reason to start a server: show the state only where one runs.
                const folder = activeFolder();
                if (folder !== undefined && this.clients.has(folder)) {
                    void this.refresh(folder);
                } else {
                    this.generation++;
                    this.item.hide();
                }
            }),
        );
    }

    /** Ask the server of `folder` (by default the active editor's) for its sandbox's state. */
    async refresh(folder = activeFolder()): Promise<void> {
        const generation = ++this.generation;
        if (folder === undefined) {
            return;
        }
        let text: string;
        let tooltip: string;
        try {
            const result = await this.clients.send<StatusResult>(folder, Command.STATUS, {});
            if (result === undefined) {
                return;
            }
            const mine = result.sandboxes.find((s) => samePath(s.workspace, folder.uri.fsPath)) ?? result.sandboxes[0];
            const state = mine?.state ?? ContainerState.ABSENT;
            text = `$(${state === ContainerState.RUNNING ? 'vm-running' : 'vm-outline'}) cellbox: ${WORDS[state] ?? state}`;
            tooltip = mine ? `${mine.container}\nimage ${mine.image}\n${mine.workspace}` : folder.uri.fsPath;
        } catch (error) {
            text = '$(vm-outline) cellbox: ?';
            tooltip = error instanceof Error ? error.message : String(error);
        }
        if (generation === this.generation) {
            this.item.text = text;
            this.item.tooltip = tooltip;
            this.item.show();
        }
    }

    text(): string {
        return this.item.text;
    }

    dispose(): void {
        this.subscriptions.forEach((s) => s.dispose());
        this.item.dispose();
    }
}

export function activeFolder(): vscode.WorkspaceFolder | undefined {
    const uri = vscode.window.activeTextEditor?.document.uri;
    const folder = uri ? vscode.workspace.getWorkspaceFolder(uri) : undefined;
    return folder ?? (vscode.workspace.workspaceFolders?.length === 1 ? vscode.workspace.workspaceFolders[0] : undefined);
}

function samePath(a: string, b: string): boolean {
    return path.resolve(a) === path.resolve(b);
}
