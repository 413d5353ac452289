// Owns one decision: what a folder's server is started with, and from which
// settings scopes. Code run in the sandbox can write every file of the
// workspace, and a cloned repository chose all of its files: its
// .vscode/settings.json and .code-workspace file too (issue #11). So only the
// user's own settings may choose the program run on this machine or loosen
// the sandbox:
//   - cellbox.serverCommand: the user's value only; a workspace's or folder's
//     is ignored (serverCommand.ts), and the user is told.
//   - cellbox.sandbox: the user's value is the initializationOptions the
//     server trusts; the workspace's and folder's values go under
//     `workspaceSettings`, which the server treats as it treats cellbox.toml
//     (they may tighten anything, and what would loosen the sandbox is
//     ignored), and in Restricted Mode they are not sent at all.
import * as vscode from 'vscode';
import { ServerCommand, serverCommandFor } from './serverCommand';

export interface Launch {
    /** undefined when no cellbox program was found. */
    command: ServerCommand | undefined;
    initializationOptions: Record<string, unknown>;
}

/** What the folder's server is to be started with, from the settings as they are now. */
export function launchFor(folder: vscode.WorkspaceFolder): Launch {
    const sandbox = vscode.workspace.getConfiguration('cellbox', folder.uri).inspect<Record<string, unknown>>('sandbox');
    const options: Record<string, unknown> = { ...asObject(sandbox?.globalValue) };
    if (vscode.workspace.isTrusted) {
        const workspaceSettings = { ...asObject(sandbox?.workspaceValue), ...asObject(sandbox?.workspaceFolderValue) };
        if (Object.keys(workspaceSettings).length > 0) {
            options.workspaceSettings = workspaceSettings;
        }
    }
    return { command: serverCommandFor(folder), initializationOptions: options };
}

/** Whether a server started with `a` would differ from one started with `b`. */
export function sameLaunch(a: Launch, b: Launch): boolean {
    return canonical(a) === canonical(b);
}

/**
 * Where a workspace sets cellbox.serverCommand, which is ignored: a name for
 * the user, or undefined when no workspace or folder value is set.
 */
export function ignoredServerCommand(folder: vscode.WorkspaceFolder): string | undefined {
    const setting = vscode.workspace.getConfiguration('cellbox', folder.uri).inspect('serverCommand');
    if (setting?.workspaceFolderValue !== undefined && vscode.workspace.workspaceFile !== undefined) {
        return `${folder.name}'s .vscode/settings.json`;
    }
    if (setting?.workspaceValue !== undefined) {
        return vscode.workspace.workspaceFile !== undefined ? 'the workspace file' : `${folder.name}'s .vscode/settings.json`;
    }
    return undefined;
}

function asObject(value: unknown): Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** JSON with object keys sorted, so that two equal launches compare equal whatever their keys' order. */
function canonical(value: unknown): string {
    return JSON.stringify(value, (_key, v: unknown) =>
        typeof v === 'object' && v !== null && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
            : v,
    );
}
