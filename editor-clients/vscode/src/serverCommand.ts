// Owns one decision: which program starts `cellbox serve` for a workspace folder.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

export interface ServerCommand {
    command: string;
    args: string[];
}

/**
 * The user's setting if given, else the folder's own venv, else `cellbox` on
 * PATH; undefined when none is found. Only the user settings' value counts:
 * a workspace's or folder's would run a program of the workspace's choosing
 * on this machine (see launch.ts).
 */
export function serverCommandFor(folder: vscode.WorkspaceFolder): ServerCommand | undefined {
    const setting = vscode.workspace.getConfiguration('cellbox', folder.uri).inspect<string | string[]>('serverCommand')?.globalValue;
    if (Array.isArray(setting) && setting.length > 0) {
        return { command: setting[0], args: setting.slice(1) };
    }
    if (typeof setting === 'string' && setting.trim() !== '') {
        return { command: setting.trim(), args: ['serve'] };
    }
    // A project that installed cellbox into its own venv need not activate it first.
    const candidates = [path.join(folder.uri.fsPath, '.venv', 'bin', 'cellbox')];
    for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
        candidates.push(path.join(dir, 'cellbox'));
    }
    const found = candidates.find(isExecutableFile);
    return found ? { command: found, args: ['serve'] } : undefined;
}

function isExecutableFile(file: string): boolean {
    try {
        fs.accessSync(file, fs.constants.X_OK);
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}
