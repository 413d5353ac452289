// The names this extension shares with the server: its commands, its
// notifications, why a block ended (a result's `status`) and the one glyph each
// status is drawn with, and the sandbox states it reports. The server defines
// them in server/cellbox/vocabulary.py; this is the extension's one copy, and
// tests/unit/test_vocabulary.py fails when the two differ.

/** The server's commands, sent with workspace/executeCommand. */
export const Command = {
    EXECUTE: 'cellbox.execute',
    CANCEL: 'cellbox.cancel',
    RESTART: 'cellbox.restart',
    STOP: 'cellbox.stop',
    STATUS: 'cellbox.status',
    TRUST: 'cellbox.trust',
} as const;

/** What the server sends during a run besides standard LSP. */
export const Notification = {
    BLOCK_STARTED: 'cellbox/blockStarted',
    OUTPUT: 'cellbox/output',
    DISPLAY: 'cellbox/display',
} as const;

/** Why a block ended: the `status` of a block in a result. */
export const Status = {
    OK: 'ok',
    ERROR: 'error',
    TIMEOUT: 'timeout',
    CANCELLED: 'cancelled',
    OOM: 'oom',
    OUTPUT_LIMIT: 'output_limit',
    NOT_EXECUTED: 'not_executed',
    INTERRUPTED: 'interrupted',
} as const;

export type BlockStatus = (typeof Status)[keyof typeof Status];

/** The glyph of each status, as everywhere cellbox shows one. */
export const GLYPHS: Record<BlockStatus, string> = {
    ok: '✓',
    error: '✗',
    timeout: '⏱',
    cancelled: '⊘',
    oom: '✗',
    output_limit: '✗',
    not_executed: '•',
    interrupted: '↻',
};

/** The sandbox states the server itself reports; cellbox.status may also pass on the engine's own word (`exited`, …). */
export const ContainerState = {
    RUNNING: 'running',
    STOPPED: 'stopped',
    ABSENT: 'absent',
    FOREIGN: 'foreign',
} as const;
