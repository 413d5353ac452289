// Owns one decision: which program starts `cellbox serve` for a workspace folder.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

export interface ServerCommand {
    command: string;
    args: string[];
}

/**
 * The user's setting if given, else `cellbox` on PATH; undefined when neither
 * is found. Only the user settings' value counts, and no program of the
 * workspace's own is run unasked: code run in the sandbox can write every
 * file of the workspace, a .vscode/settings.json or a .venv/bin/cellbox alike,
 * and a cloned repository can ship either (issue #11).
 */
export function serverCommandFor(folder: vscode.WorkspaceFolder): ServerCommand | undefined {
    const setting = vscode.workspace.getConfiguration('cellbox', folder.uri).inspect<string | string[]>('serverCommand')?.globalValue;
    if (Array.isArray(setting) && setting.length > 0) {
        return { command: setting[0], args: setting.slice(1) };
    }
    if (typeof setting === 'string' && setting.trim() !== '') {
        return { command: setting.trim(), args: ['serve', '--eager'] };
    }
    // Absolute entries only: a relative one would be looked up from wherever the editor runs.
    const found = (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter((dir) => path.isAbsolute(dir))
        .map((dir) => path.join(dir, 'cellbox'))
        .find(isExecutableFile);
    return found ? { command: found, args: ['serve', '--eager'] } : undefined;
}

/** The folder's own .venv/bin/cellbox, which is not used unless the user names it; undefined when there is none. */
export function workspaceVenvCellbox(folder: vscode.WorkspaceFolder): string | undefined {
    const candidate = path.join(folder.uri.fsPath, '.venv', 'bin', 'cellbox');
    return isExecutableFile(candidate) ? candidate : undefined;
}

function isExecutableFile(file: string): boolean {
    try {
        fs.accessSync(file, fs.constants.X_OK);
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}
