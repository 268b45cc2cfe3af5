import type { Command, Option } from 'commander';
import { UsageError } from '../core/errors.js';

/**
 * `lilio completion bash|zsh`: a completion script generated from the
 * program's own commands and options (commander's tree), so it never falls
 * behind them. zsh uses the same function through bashcompinit.
 */

/** "bucket create" for `lilio bucket create`, '' for lilio itself. */
function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function allCommands(root: Command): Command[] {
  const out: Command[] = [root];
  for (const c of root.commands) out.push(...allCommands(c));
  return out;
}

function optionWords(options: readonly Option[]): string[] {
  return options.flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f)));
}

/** Words safe to put inside a bash double-quoted string: ours are plain names and flags. */
function words(list: string[]): string {
  return list.filter((w) => /^[\w.-]+$/.test(w)).join(' ');
}

export function bashCompletion(program: Command): string {
  const commands = allCommands(program).filter((c) => c.name() !== 'help');
  const globals = [...optionWords(program.options), '--help', '--version'];
  const takesValue = new Set<string>();
  for (const c of commands) {
    for (const o of c.options) if (o.required || o.optional) for (const f of optionWords([o])) takesValue.add(f);
  }
  const subcommandCases = commands
    .filter((c) => c.commands.length > 0)
    .map((c) => `    "${pathOf(c)}") echo "${words(c.commands.map((s) => s.name()).filter((n) => n !== 'help'))}" ;;`);
  const optionCases = commands.map(
    (c) => `    "${pathOf(c)}") echo "${words([...optionWords(c.options), '--help'])}" ;;`,
  );
  return `# lilio completion for bash. Load it with:  source <(lilio completion bash)
# or install it:  lilio completion bash > /etc/bash_completion.d/lilio
_lilio_subcommands() {
  case "$1" in
${subcommandCases.join('\n')}
  esac
}
_lilio_options() {
  case "$1" in
${optionCases.join('\n')}
  esac
}
_lilio() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" word sub i
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case " ${words([...takesValue])} " in *" $word "*) i=$((i + 1)); continue ;; esac
    case "$word" in -*) continue ;; esac
    for sub in $(_lilio_subcommands "$path"); do
      if [ "$sub" = "$word" ]; then path="\${path:+$path }$word"; break; fi
    done
  done
  case " ${words([...takesValue])} " in
    *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_lilio_options "$path") ${words(globals)}" -- "$cur"))
    return 0
  fi
  local subs
  subs="$(_lilio_subcommands "$path")"
  if [ -n "$subs" ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}
complete -o filenames -F _lilio lilio
`;
}

export function zshCompletion(program: Command): string {
  return `#compdef lilio
# lilio completion for zsh. Load it with:  source <(lilio completion zsh)  (after compinit)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program).split('\n').slice(2).join('\n')}`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion <shell>')
    .description('print a completion script for bash or zsh (source <(lilio completion bash))')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashCompletion(program));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(program));
      else throw new UsageError(`completion: "${shell}" is not a shell this knows: bash or zsh`);
    });
}
