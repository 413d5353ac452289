// Owns one fact per workspace folder: the slow step its server is on before
// a block can run (pulling an image, building the environment, starting a
// session's kernel), from the server's work-done progress, e.g. "building
// environment (step 3/6): RUN pip install …". vscode-languageclient draws
// every progress in the status bar itself, but after a long title and
// clipped; sandboxStatus.ts shows the step in cellbox's own item. A run's
// own progress (the block and its clock) is cancellable, and not a step.
import { WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport } from 'vscode-languageclient/node';

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

interface Step {
    token: string | number;
    text: string;
}

export class Steps {
    /** Per folder URI, its steps going, oldest first. */
    private readonly going = new Map<string, Step[]>();

    /** Take in one progress message of `folder`'s server; whether that changed its step. */
    update(folder: string, token: string | number, value: ProgressValue): boolean {
        const steps = this.going.get(folder) ?? [];
        const step = steps.find((s) => s.token === token);
        if (value.kind === 'begin') {
            if (value.cancellable) {
                return false;
            }
            steps.push({ token, text: value.message ?? value.title });
            this.going.set(folder, steps);
            return true;
        }
        if (step === undefined) {
            return false;
        }
        if (value.kind === 'end') {
            steps.splice(steps.indexOf(step), 1);
        } else if (value.message !== undefined) {
            step.text = value.message;
        }
        return true;
    }

    /** What `folder`'s server is doing now before a block can run; undefined when nothing. */
    current(folder: string): string | undefined {
        return this.going.get(folder)?.at(-1)?.text;
    }
}
