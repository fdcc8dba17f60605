using System.Text;
using System.Text.Json;

namespace Melious.Bench;

/// <summary>
/// The request bodies both benchmark projects use: a Claude Code–shaped Messages request (docs: shared
/// claude-code.md §2–3) with a system prompt of a few KB that starts with the <c>x-anthropic-billing-header</c>
/// block, a mid-conversation <c>system</c> message, user/assistant/tool_use/tool_result turns of a few KB, and 25
/// tools with draft 2020-12 JSON schemas. Deterministic: the same bytes on every run.
/// </summary>
public static class BenchRequests
{
    public const string Model = "claude-sonnet-4-5-20250929";

    public static readonly string[] AnthropicBeta =
    [
        "claude-code-20250219", "interleaved-thinking-2025-05-14", "thinking-token-count-2026-05-13",
        "context-management-2025-06-27", "prompt-caching-scope-2026-01-05", "mid-conversation-system-2026-04-07", "effort-2025-11-24",
    ];

    public const string SessionId = "e5731b20-a588-48a3-b01f-ca2c7ab69080";

    /// <summary>The streaming Messages body (what Claude Code POSTs to /v1/messages?beta=true).</summary>
    public static byte[] Messages(bool stream = true, string model = Model, long maxTokens = 32000) => Build(model, maxTokens, stream, countTokens: false);

    /// <summary>The same conversation as a count_tokens body: no max_tokens, no stream, all 25 tools.</summary>
    public static byte[] CountTokens(string model = Model) => Build(model, null, false, countTokens: true);

    /// <summary>A tiny count_tokens body, used as a latency probe.</summary>
    public static byte[] TinyCountTokens(string model = Model) =>
        Encoding.UTF8.GetBytes($$"""{"model":"{{model}}","messages":[{"role":"user","content":"ping"}]}""");

    public static int ToolCount => Tools.Length;

    private static byte[] Build(string model, long? maxTokens, bool stream, bool countTokens)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(64 * 1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", model);

            w.WritePropertyName("messages");
            w.WriteStartArray();
            // [0] user: system reminder + the prompt.
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WritePropertyName("content");
            w.WriteStartArray();
            TextBlock(w, "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# currentDate\nToday's date is 2026-11-24.\n\n      IMPORTANT: this context may or may not be relevant to your tasks. You should not respond to this context unless it is highly relevant to your task.\n</system-reminder>\n");
            TextBlock(w, "The build of src/Parser fails after the last refactor with CS8602 in TokenStream.cs. Find the cause, fix it, and run the parser tests. Keep the public API unchanged.", cache: false);
            w.WriteEndArray();
            w.WriteEndObject();

            // [1] the mid-conversation system message (agent types and skills).
            w.WriteStartObject();
            w.WriteString("role", "system");
            w.WriteString("content", MidConversationSystem);
            w.WriteEndObject();

            // [2] assistant: thinking, text, tool_use Read.
            w.WriteStartObject();
            w.WriteString("role", "assistant");
            w.WritePropertyName("content");
            w.WriteStartArray();
            w.WriteStartObject();
            w.WriteString("type", "thinking");
            w.WriteString("thinking", "The user reports CS8602 (possible null dereference) in TokenStream.cs after a refactor. I should read the file first, then look at how Peek() is used after the change, and finally run the tests with dotnet test.");
            w.WriteString("signature", "melious.k2X9wQe7Rr1t8PzLmN3vB6cD4fG5hJ0a");
            w.WriteEndObject();
            TextBlock(w, "I'll start by reading the file that fails to compile.");
            ToolUse(w, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "Read", """{"file_path":"/home/dev/project/src/Parser/TokenStream.cs"}""");
            w.WriteEndArray();
            w.WriteEndObject();

            // [3] user: tool_result (string content, as Claude Code sends for Read).
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WritePropertyName("content");
            w.WriteStartArray();
            w.WriteStartObject();
            w.WriteString("type", "tool_result");
            w.WriteString("tool_use_id", "toolu_01NRLabsLyVHZPKxbKvkfSMn");
            w.WriteString("content", FileContent);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();

            // [4] assistant: text + tool_use Bash.
            w.WriteStartObject();
            w.WriteString("role", "assistant");
            w.WritePropertyName("content");
            w.WriteStartArray();
            TextBlock(w, "`Peek()` now returns `Token?`, but `ParseExpression` dereferences it without a check. Let me see which tests cover it before changing anything.");
            ToolUse(w, "toolu_01HmB5pZ2sYc8JxVqW4n3KtR", "Bash", """{"command":"cd /home/dev/project && dotnet test tests/Parser.Tests --filter TokenStream --no-restore 2>&1 | tail -30","description":"Run the TokenStream parser tests"}""");
            w.WriteEndArray();
            w.WriteEndObject();

            // [5] user: tool_result with is_error false; the cache breakpoint sits on the last block.
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WritePropertyName("content");
            w.WriteStartArray();
            w.WriteStartObject();
            w.WriteString("type", "tool_result");
            w.WriteString("tool_use_id", "toolu_01HmB5pZ2sYc8JxVqW4n3KtR");
            w.WriteString("content", TestOutput);
            w.WriteBoolean("is_error", false);
            w.WritePropertyName("cache_control");
            w.WriteRawValue("""{"type":"ephemeral"}""");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();

            w.WritePropertyName("system");
            w.WriteStartArray();
            TextBlock(w, "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;", cache: false);
            TextBlock(w, "You are a Claude agent, built on Anthropic's Claude Agent SDK.", cache: true);
            TextBlock(w, MainSystemPrompt, cache: true);
            w.WriteEndArray();

            w.WritePropertyName("tools");
            w.WriteStartArray();
            foreach (var (name, description, schema) in Tools)
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteString("description", description);
                w.WritePropertyName("input_schema");
                w.WriteRawValue(schema);
                w.WriteEndObject();
            }

            w.WriteEndArray();

            if (!countTokens)
            {
                w.WritePropertyName("metadata");
                w.WriteStartObject();
                w.WriteString("user_id", $$"""{"device_id":"{{new string('a', 32)}}{{new string('7', 32)}}","account_uuid":"","session_id":"{{SessionId}}"}""");
                w.WriteEndObject();
            }

            if (maxTokens is { } max)
            {
                w.WriteNumber("max_tokens", max);
            }

            if (!countTokens)
            {
                w.WritePropertyName("thinking");
                w.WriteRawValue("""{"type":"adaptive"}""");
                w.WritePropertyName("context_management");
                w.WriteRawValue("""{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}""");
                w.WritePropertyName("output_config");
                w.WriteRawValue("""{"effort":"high"}""");
            }

            if (stream)
            {
                w.WriteBoolean("stream", true);
            }

            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void TextBlock(Utf8JsonWriter w, string text, bool cache = false)
    {
        w.WriteStartObject();
        w.WriteString("type", "text");
        w.WriteString("text", text);
        if (cache)
        {
            w.WritePropertyName("cache_control");
            w.WriteRawValue("""{"type":"ephemeral"}""");
        }

        w.WriteEndObject();
    }

    private static void ToolUse(Utf8JsonWriter w, string id, string name, string inputJson)
    {
        w.WriteStartObject();
        w.WriteString("type", "tool_use");
        w.WriteString("id", id);
        w.WriteString("name", name);
        w.WritePropertyName("input");
        w.WriteRawValue(inputJson);
        w.WriteEndObject();
    }

    private static string Repeat(string paragraph, int times)
    {
        var sb = new StringBuilder(paragraph.Length * times);
        for (var i = 0; i < times; i++)
        {
            sb.Append(paragraph.Replace("{n}", (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        }

        return sb.ToString();
    }

    private static readonly string MainSystemPrompt =
        "\nYou are an interactive agent that helps users with software engineering tasks. Use the instructions below and the tools available to you to assist the user.\n\n" +
        "IMPORTANT: Assist with authorized security testing, defensive security, CTF challenges, and educational contexts. Refuse requests for destructive techniques.\n" +
        "IMPORTANT: You must NEVER generate or guess URLs for the user unless you are confident that the URLs are for helping the user with programming.\n\n" +
        "# Tone and style\n- Only use emojis if the user explicitly requests it.\n- Your output will be displayed on a command line interface. Your responses should be short and concise. You can use GitHub-flavored markdown for formatting.\n- Output text to communicate with the user; all text you output outside of tool use is displayed to the user.\n- NEVER create files unless they're absolutely necessary for achieving your goal. ALWAYS prefer editing an existing file to creating a new one.\n\n" +
        "# Professional objectivity\nPrioritize technical accuracy and truthfulness over validating the user's beliefs. Focus on facts and problem-solving, providing direct, objective technical info without any unnecessary superlatives, praise, or emotional validation.\n\n" +
        "# Task Management\nYou have access to the TaskCreate and TaskUpdate tools to help you manage and plan tasks. Use these tools VERY frequently to ensure that you are tracking your tasks and giving the user visibility into your progress.\n" +
        Repeat("Example {n}:\nuser: Run the build and fix any type errors\nassistant: I'm going to use the TaskCreate tool to write the following items to the task list:\n- Run the build\n- Fix any type errors\nI'm now going to run the build using Bash. Looks like I found 10 type errors. I'm going to use the TaskCreate tool to write 10 items to the task list, then mark the first as in_progress and fix it.\n\n", 3) +
        "# Doing tasks\nThe user will primarily request you perform software engineering tasks. This includes solving bugs, adding new functionality, refactoring code, explaining code, and more. For these tasks the following steps are recommended:\n- Use the TaskCreate tool to plan the task if required\n- Use the available search tools to understand the codebase and the user's query.\n- Implement the solution using all tools available to you\n- Verify the solution if possible with tests. NEVER assume specific test framework or test script. Check the README or search codebase to determine the testing approach.\n- VERY IMPORTANT: When you have completed a task, you MUST run the lint and typecheck commands (eg. npm run lint, npm run typecheck, ruff, etc.) with Bash if they were provided to you to ensure your code is correct.\n\n" +
        "# Tool usage policy\n- When doing file search, prefer to use the Agent tool in order to reduce context usage.\n- You can call multiple tools in a single response. If you intend to call multiple tools and there are no dependencies between them, make all independent tool calls in parallel.\n- Use specialized tools instead of bash commands when possible: Read for reading files instead of cat/head/tail, Edit for editing instead of sed/awk, and Write for creating files instead of echo redirection.\n\n" +
        "Here is useful information about the environment you are running in:\n<env>\nWorking directory: /home/dev/project\nIs directory a git repo: Yes\nPlatform: linux\nOS Version: Linux 6.1.0-27-amd64\nToday's date: 2026-11-24\n</env>\nYou are powered by the model named Sonnet 4.5. The exact model ID is claude-sonnet-4-5-20250929.\n\n" +
        "# Code References\nWhen referencing specific functions or pieces of code include the pattern `file_path:line_number` to allow the user to easily navigate to the source code location.\n\n" +
        "gitStatus: This is the git status at the start of the conversation.\nCurrent branch: feature/parser-nullability\n\nMain branch (you will usually use this for PRs): main\n\nStatus:\nM src/Parser/TokenStream.cs\nM src/Parser/ExpressionParser.cs\n?? notes.md\n\nRecent commits:\n4f1c2ab Make Peek() nullable\n9e03d11 Split lexer states\n77ab2c0 Add benchmarks for the tokenizer\n";

    private static readonly string MidConversationSystem =
        "<system-reminder>\nThe following agent types are available for use with the Agent tool:\n" +
        Repeat("- agent-{n}: A specialised agent for a class of tasks (searching code, reviewing diffs, planning a change, writing tests). Use it when the task needs many reads or searches that would fill the main context. (Tools: Read, Bash, WebFetch, WebSearch)\n", 6) +
        "\nThe following skills are available for use with the Skill tool:\n" +
        Repeat("- skill-{n}: Applies a documented procedure (release notes, changelog, dependency bump, code review checklist) to the current repository. Trigger it when the user names the procedure or asks for its output.\n", 5) +
        "</system-reminder>";

    private static readonly string FileContent =
        "1\tusing System.Diagnostics.CodeAnalysis;\n2\t\n3\tnamespace Parser;\n4\t\n5\t/// <summary>A forward-only view over the lexer's tokens with one token of lookahead.</summary>\n6\tpublic sealed class TokenStream\n7\t{\n8\t    private readonly IReadOnlyList<Token> _tokens;\n9\t    private int _position;\n10\t\n11\t    public TokenStream(IReadOnlyList<Token> tokens) => _tokens = tokens;\n12\t\n13\t    public bool AtEnd => _position >= _tokens.Count;\n14\t\n15\t    public Token? Peek() => AtEnd ? null : _tokens[_position];\n16\t\n17\t    public Token Next()\n18\t    {\n19\t        if (AtEnd)\n20\t        {\n21\t            throw new ParseException(\"unexpected end of input\");\n22\t        }\n23\t\n24\t        return _tokens[_position++];\n25\t    }\n26\t\n27\t    public bool TryConsume(TokenKind kind, [NotNullWhen(true)] out Token? token)\n28\t    {\n29\t        token = Peek();\n30\t        if (token is null || token.Kind != kind)\n31\t        {\n32\t            token = null;\n33\t            return false;\n34\t        }\n35\t\n36\t        _position++;\n37\t        return true;\n38\t    }\n39\t\n40\t    public Token Expect(TokenKind kind)\n41\t    {\n42\t        var token = Peek();\n43\t        if (token.Kind != kind)\n44\t        {\n45\t            throw new ParseException($\"expected {kind}, found {token.Kind} at {token.Position}\");\n46\t        }\n47\t\n48\t        _position++;\n49\t        return token;\n50\t    }\n51\t}\n";

    private static readonly string TestOutput =
        "  Determining projects to restore...\n  All projects are up-to-date for restore.\n/home/dev/project/src/Parser/TokenStream.cs(43,13): error CS8602: Dereference of a possibly null reference. [/home/dev/project/src/Parser/Parser.csproj]\n/home/dev/project/src/Parser/TokenStream.cs(45,63): error CS8602: Dereference of a possibly null reference. [/home/dev/project/src/Parser/Parser.csproj]\n\nBuild FAILED.\n\n/home/dev/project/src/Parser/TokenStream.cs(43,13): error CS8602: Dereference of a possibly null reference.\n/home/dev/project/src/Parser/TokenStream.cs(45,63): error CS8602: Dereference of a possibly null reference.\n    0 Warning(s)\n    2 Error(s)\n\nTime Elapsed 00:00:03.41\n";

    private const string S = "\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\"";

    private static readonly (string Name, string Description, string Schema)[] Tools =
    [
        ("Agent",
            "Launch a new agent to handle complex, multi-step tasks autonomously.\n\nThe Agent tool launches specialized agents (subprocesses) that autonomously handle complex tasks. Each agent type has specific capabilities and tools available to it.\n\nWhen NOT to use the Agent tool:\n- If you want to read a specific file path, use the Read tool instead\n- If you are searching for a specific class definition like \"class Foo\", use Bash with grep instead\n- If you are searching for code within a specific file or set of 2-3 files, use the Read tool instead\n\nUsage notes:\n- Launch multiple agents concurrently whenever possible, to maximize performance; to do that, use a single message with multiple tool uses\n- When the agent is done, it will return a single message back to you. The result returned by the agent is not visible to the user.\n- Each agent invocation is stateless unless resumed. Your prompt should contain a highly detailed task description for the agent to perform autonomously.\n- The agent's outputs should generally be trusted\n- Clearly tell the agent whether you expect it to write code or just to do research",
            "{" + S + ",\"properties\":{\"description\":{\"type\":\"string\",\"description\":\"A short (3-5 word) description of the task\"},\"prompt\":{\"type\":\"string\",\"description\":\"The task for the agent to perform\"},\"subagent_type\":{\"type\":\"string\",\"description\":\"The type of specialized agent to use for this task\"},\"model\":{\"type\":\"string\",\"enum\":[\"sonnet\",\"opus\",\"haiku\",\"inherit\"],\"description\":\"Optional model override for this agent\"},\"resume\":{\"type\":\"string\",\"description\":\"Optional agent ID to resume from\"},\"run_in_background\":{\"type\":\"boolean\",\"description\":\"Run the agent in the background and get notified when it completes\"}},\"required\":[\"description\",\"prompt\",\"subagent_type\"],\"additionalProperties\":false}"),
        ("AskUserQuestion",
            "Use this tool when you need to ask the user questions during execution. This allows you to gather user preferences or requirements, clarify ambiguous instructions, get decisions on implementation choices as you work, and offer choices to the user about what direction to take.\n\nUsage notes:\n- Users will always be able to select \"Other\" to provide custom text input\n- Use multiSelect: true to allow multiple answers to be selected for a question\n- If you recommend a specific option, make that the first option in the list and add \"(Recommended)\" at the end of the label",
            "{" + S + ",\"properties\":{\"questions\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":4,\"items\":{\"type\":\"object\",\"properties\":{\"question\":{\"type\":\"string\",\"description\":\"The complete question to ask the user\"},\"header\":{\"type\":\"string\",\"maxLength\":12,\"description\":\"Very short label displayed as a chip/tag\"},\"options\":{\"type\":\"array\",\"minItems\":2,\"maxItems\":4,\"items\":{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"}},\"required\":[\"label\",\"description\"],\"additionalProperties\":false}},\"multiSelect\":{\"type\":\"boolean\",\"default\":false}},\"required\":[\"question\",\"header\",\"options\",\"multiSelect\"],\"additionalProperties\":false}},\"answers\":{\"type\":\"object\",\"propertyNames\":{\"type\":\"string\"},\"additionalProperties\":{\"type\":\"string\"}}},\"required\":[\"questions\"],\"additionalProperties\":false}"),
        ("Bash",
            "Executes a given bash command with optional timeout. Working directory persists between commands; shell state (everything else) does not. The shell environment is initialized from the user's profile (bash or zsh).\n\nIMPORTANT: This tool is for terminal operations like git, npm, docker, etc. DO NOT use it for file operations (reading, writing, editing, searching, finding files) - use the specialized tools for this instead.\n\nBefore executing the command, please follow these steps:\n\n1. Directory Verification:\n   - If the command will create new directories or files, first use `ls` to verify the parent directory exists and is the correct location\n\n2. Command Execution:\n   - Always quote file paths that contain spaces with double quotes (e.g., cd \"path with spaces/file.txt\")\n   - After ensuring proper quoting, execute the command.\n   - Capture the output of the command.\n\nUsage notes:\n  - The command argument is required.\n  - You can specify an optional timeout in milliseconds (up to 600000ms / 10 minutes). If not specified, commands will timeout after 120000ms (2 minutes).\n  - It is very helpful if you write a clear, concise description of what this command does in 5-10 words.\n  - If the output exceeds 30000 characters, output will be truncated before being returned to you.\n  - You can use the `run_in_background` parameter to run the command in the background.\n  - Avoid using Bash with the `find`, `grep`, `cat`, `head`, `tail`, `sed`, `awk`, or `echo` commands, unless explicitly instructed.\n  - When issuing multiple commands: if the commands are independent and can run in parallel, make multiple Bash tool calls in a single message; if they depend on each other, use a single Bash call with '&&' to chain them together.\n\n# Committing changes with git\n\nOnly create commits when requested by the user. If unclear, ask first. When the user asks you to create a new git commit, follow these steps carefully:\n- NEVER update the git config\n- NEVER run destructive/irreversible git commands (like push --force, hard reset, etc) unless the user explicitly requests them\n- NEVER skip hooks (--no-verify, --no-gpg-sign, etc) unless the user explicitly requests it\n- Avoid git commit --amend. ONLY use --amend when the user explicitly requested it.\n1. Run git status, git diff and git log in parallel to understand the change and the repository's commit message style.\n2. Analyze all staged changes and draft a commit message that focuses on the \"why\" rather than the \"what\".\n3. Add relevant untracked files to the staging area, create the commit, and run git status after the commit completes to verify success.",
            "{" + S + ",\"properties\":{\"command\":{\"type\":\"string\",\"description\":\"The command to execute\"},\"timeout\":{\"type\":\"number\",\"description\":\"Optional timeout in milliseconds (max 600000)\"},\"description\":{\"type\":\"string\",\"description\":\"Clear, concise description of what this command does in 5-10 words, in active voice.\"},\"run_in_background\":{\"type\":\"boolean\",\"description\":\"Set to true to run this command in the background. Use TaskOutput to read the output later.\"},\"dangerouslyDisableSandbox\":{\"type\":\"boolean\",\"description\":\"Set this to true to dangerously override sandbox mode and run commands without sandboxing.\"}},\"required\":[\"command\"],\"additionalProperties\":false}"),
        ("CronCreate",
            "Schedule a prompt to run on a cron schedule in this session. The schedule uses standard five-field cron syntax in the local time zone. Returns the id of the new job.",
            "{" + S + ",\"properties\":{\"schedule\":{\"type\":\"string\",\"pattern\":\"^(\\\\S+\\\\s+){4}\\\\S+$\",\"description\":\"Five-field cron expression\"},\"prompt\":{\"type\":\"string\",\"minLength\":1},\"max_runs\":{\"type\":\"integer\",\"exclusiveMinimum\":0,\"maximum\":9007199254740991}},\"required\":[\"schedule\",\"prompt\"],\"additionalProperties\":false}"),
        ("CronDelete",
            "Delete a scheduled cron job by id.",
            "{" + S + ",\"properties\":{\"id\":{\"type\":\"string\",\"minLength\":1}},\"required\":[\"id\"],\"additionalProperties\":false}"),
        ("CronList",
            "List the cron jobs scheduled in this session with their next run time.",
            "{" + S + ",\"properties\":{},\"additionalProperties\":false}"),
        ("Edit",
            "Performs exact string replacements in files.\n\nUsage:\n- You must use your `Read` tool at least once in the conversation before editing. This tool will error if you attempt an edit without reading the file.\n- When editing text from Read tool output, ensure you preserve the exact indentation (tabs/spaces) as it appears AFTER the line number prefix. The line number prefix format is: spaces + line number + tab. Everything after that tab is the actual file content to match.\n- ALWAYS prefer editing existing files in the codebase. NEVER write new files unless explicitly required.\n- The edit will FAIL if `old_string` is not unique in the file. Either provide a larger string with more surrounding context to make it unique or use `replace_all` to change every instance of `old_string`.\n- Use `replace_all` for replacing and renaming strings across the file. This parameter is useful if you want to rename a variable for instance.",
            "{" + S + ",\"properties\":{\"file_path\":{\"type\":\"string\",\"description\":\"The absolute path to the file to modify\"},\"old_string\":{\"type\":\"string\",\"description\":\"The text to replace\"},\"new_string\":{\"type\":\"string\",\"description\":\"The text to replace it with (must be different from old_string)\"},\"replace_all\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Replace all occurences of old_string (default false)\"}},\"required\":[\"file_path\",\"old_string\",\"new_string\"],\"additionalProperties\":false}"),
        ("EnterWorktree",
            "Create or enter a git worktree for isolated work on a branch. Use it when the user asks for parallel work that must not touch the current checkout.",
            "{" + S + ",\"properties\":{\"branch\":{\"type\":\"string\",\"minLength\":1},\"base\":{\"type\":\"string\",\"description\":\"Base ref, default HEAD\"},\"path\":{\"type\":\"string\"}},\"required\":[\"branch\"],\"additionalProperties\":false}"),
        ("ExitWorktree",
            "Leave the current git worktree and return to the main checkout, optionally removing the worktree.",
            "{" + S + ",\"properties\":{\"remove\":{\"type\":\"boolean\",\"default\":false}},\"additionalProperties\":false}"),
        ("NotebookEdit",
            "Completely replaces the contents of a specific cell in a Jupyter notebook (.ipynb file) with new source. Jupyter notebooks are interactive documents that combine code, text, and visualizations, commonly used for data analysis and scientific computing. The notebook_path parameter must be an absolute path, not a relative path. The cell_number is 0-indexed. Use edit_mode=insert to add a new cell at the index specified by cell_number. Use edit_mode=delete to delete the cell at the index specified by cell_number.",
            "{" + S + ",\"properties\":{\"notebook_path\":{\"type\":\"string\"},\"cell_id\":{\"type\":\"string\"},\"new_source\":{\"type\":\"string\"},\"cell_type\":{\"type\":\"string\",\"enum\":[\"code\",\"markdown\"]},\"edit_mode\":{\"type\":\"string\",\"enum\":[\"replace\",\"insert\",\"delete\"]}},\"required\":[\"notebook_path\",\"new_source\"],\"additionalProperties\":false}"),
        ("Read",
            "Reads a file from the local filesystem. You can access any file directly by using this tool.\nAssume this tool is able to read all files on the machine. If the User provides a path to a file assume that path is valid. It is okay to read a file that does not exist; an error will be returned.\n\nUsage:\n- The file_path parameter must be an absolute path, not a relative path\n- By default, it reads up to 2000 lines starting from the beginning of the file\n- You can optionally specify a line offset and limit (especially handy for long files), but it's recommended to read the whole file by not providing these parameters\n- Any lines longer than 2000 characters will be truncated\n- Results are returned using cat -n format, with line numbers starting at 1\n- This tool allows Claude Code to read images (eg PNG, JPG, etc). When reading an image file the contents are presented visually as Claude Code is a multimodal LLM.\n- This tool can read PDF files (.pdf). PDFs are processed page by page, extracting both text and visual content for analysis.\n- This tool can read Jupyter notebooks (.ipynb files) and returns all cells with their outputs.\n- You can call multiple tools in a single response. It is always better to speculatively read multiple potentially useful files in parallel.",
            "{" + S + ",\"properties\":{\"file_path\":{\"type\":\"string\",\"description\":\"The absolute path to the file to read\"},\"offset\":{\"type\":\"number\",\"description\":\"The line number to start reading from. Only provide if the file is too large to read at once\"},\"limit\":{\"type\":\"number\",\"description\":\"The number of lines to read. Only provide if the file is too large to read at once.\"}},\"required\":[\"file_path\"],\"additionalProperties\":false}"),
        ("ReportFindings",
            "Report structured findings (bugs, risks, suggestions) from a review so they can be shown as a list with file locations.",
            "{" + S + ",\"properties\":{\"findings\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"file\":{\"type\":\"string\"},\"line\":{\"type\":\"integer\",\"minimum\":1},\"severity\":{\"type\":\"string\",\"enum\":[\"info\",\"warning\",\"error\"]},\"message\":{\"type\":\"string\"}},\"required\":[\"file\",\"severity\",\"message\"],\"additionalProperties\":false}}},\"required\":[\"findings\"],\"additionalProperties\":false}"),
        ("ScheduleWakeup",
            "Ask to be woken up after a delay to check on a long-running background process, instead of polling.",
            "{" + S + ",\"properties\":{\"delay_seconds\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600},\"reason\":{\"type\":\"string\"}},\"required\":[\"delay_seconds\"],\"additionalProperties\":false}"),
        ("SendMessage",
            "Send a message to a running background agent or teammate by id. The message is delivered at the agent's next turn.",
            "{" + S + ",\"properties\":{\"to\":{\"type\":\"string\"},\"message\":{\"type\":\"string\",\"minLength\":1},\"anyOf_hint\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}},\"required\":[\"to\",\"message\"],\"additionalProperties\":false}"),
        ("Skill",
            "Execute a skill within the main conversation. When users ask you to perform tasks, check if any of the available skills can help complete the task more effectively. Skills provide specialized capabilities and domain knowledge.",
            "{" + S + ",\"properties\":{\"skill\":{\"type\":\"string\",\"description\":\"The skill name (no arguments)\"},\"args\":{\"type\":\"string\",\"description\":\"Optional arguments for the skill\"}},\"required\":[\"skill\"],\"additionalProperties\":false}"),
        ("TaskCreate",
            "Use this tool to create a structured task list for your current coding session. This helps you track progress, organize complex tasks, and demonstrate thoroughness to the user.\n\n## When to Use This Tool\n1. Complex multi-step tasks - When a task requires 3 or more distinct steps or actions\n2. Non-trivial and complex tasks - Tasks that require careful planning or multiple operations\n3. User explicitly requests todo list - When the user directly asks you to use the todo list\n4. User provides multiple tasks - When users provide a list of things to be done\n\n## When NOT to Use This Tool\n1. There is only a single, straightforward task\n2. The task is trivial and tracking it provides no organizational benefit\n3. The task is purely conversational or informational",
            "{" + S + ",\"properties\":{\"subject\":{\"type\":\"string\",\"minLength\":1,\"description\":\"A brief title for the task\"},\"description\":{\"type\":\"string\",\"description\":\"A detailed description of what needs to be done\"},\"activeForm\":{\"type\":\"string\",\"description\":\"Present continuous form shown in the spinner when in progress\"},\"metadata\":{\"type\":\"object\",\"propertyNames\":{\"type\":\"string\"},\"additionalProperties\":{}}},\"required\":[\"subject\",\"description\"],\"additionalProperties\":false}"),
        ("TaskGet",
            "Retrieve a task by its ID from the task list, with its status, description and blockers.",
            "{" + S + ",\"properties\":{\"taskId\":{\"type\":\"string\",\"description\":\"The ID of the task to retrieve\"}},\"required\":[\"taskId\"],\"additionalProperties\":false}"),
        ("TaskList",
            "List all tasks in the task list with their id, subject, status and owner.",
            "{" + S + ",\"properties\":{},\"additionalProperties\":false}"),
        ("TaskOutput",
            "Retrieves output from a running or completed background task (shell, agent or remote session). Use block=true to wait for completion.",
            "{" + S + ",\"properties\":{\"task_id\":{\"type\":\"string\"},\"block\":{\"type\":\"boolean\",\"default\":true},\"timeout\":{\"type\":\"number\",\"minimum\":0,\"maximum\":600000,\"default\":30000}},\"required\":[\"task_id\",\"block\",\"timeout\"],\"additionalProperties\":false}"),
        ("TaskStop",
            "Stops a running background task by its ID. Returns a success or failure status.",
            "{" + S + ",\"properties\":{\"task_id\":{\"type\":\"string\"},\"shell_id\":{\"type\":\"string\",\"description\":\"Deprecated: use task_id instead\"}},\"additionalProperties\":false}"),
        ("TaskUpdate",
            "Use this tool to update a task in the task list: mark it in_progress before starting, completed when done, or deleted; change its subject or description; set its owner; and record blocking relations between tasks.",
            "{" + S + ",\"properties\":{\"taskId\":{\"type\":\"string\"},\"subject\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"activeForm\":{\"type\":\"string\"},\"status\":{\"anyOf\":[{\"type\":\"string\",\"enum\":[\"pending\",\"in_progress\",\"completed\"]},{\"type\":\"string\",\"const\":\"deleted\"}]},\"addBlocks\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"addBlockedBy\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"owner\":{\"type\":\"string\"},\"metadata\":{\"type\":\"object\",\"propertyNames\":{\"type\":\"string\"},\"additionalProperties\":{}}},\"required\":[\"taskId\"],\"additionalProperties\":false}"),
        ("WebFetch",
            "- Fetches content from a specified URL and processes it using an AI model\n- Takes a URL and a prompt as input\n- Fetches the URL content, converts HTML to markdown\n- Processes the content with the prompt using a small, fast model\n- Returns the model's response about the content\n\nUsage notes:\n  - The URL must be a fully-formed valid URL\n  - HTTP URLs will be automatically upgraded to HTTPS\n  - The prompt should describe what information you want to extract from the page\n  - This tool is read-only and does not modify any files\n  - Results may be summarized if the content is very large\n  - Includes a self-cleaning 15-minute cache for faster responses when repeatedly accessing the same URL",
            "{" + S + ",\"properties\":{\"url\":{\"type\":\"string\",\"format\":\"uri\",\"description\":\"The URL to fetch content from\"},\"prompt\":{\"type\":\"string\",\"description\":\"The prompt to run on the fetched content\"}},\"required\":[\"url\",\"prompt\"],\"additionalProperties\":false}"),
        ("WebSearch",
            "- Allows Claude to search the web and use the results to inform responses\n- Provides up-to-date information for current events and recent data\n- Returns search result information formatted as search result blocks, including links as markdown hyperlinks\n\nCRITICAL REQUIREMENT - You MUST follow this:\n  - After answering the user's question, you MUST include a \"Sources:\" section at the end of your response listing all relevant URLs from the search results as markdown hyperlinks.\n\nUsage notes:\n  - Domain filtering is supported to include or block specific websites\n  - Use the correct year in search queries",
            "{" + S + ",\"properties\":{\"query\":{\"type\":\"string\",\"minLength\":2,\"description\":\"The search query to use\"},\"allowed_domains\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":\"Only include search results from these domains\"},\"blocked_domains\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":\"Never include search results from these domains\"}},\"required\":[\"query\"],\"additionalProperties\":false}"),
        ("Workflow",
            "Run a declarative multi-step workflow: a list of steps, each a tool call or an agent prompt, with dependencies between steps, retries and per-step timeouts. Steps without dependencies run in parallel. The result lists each step's status and output.\n\n" +
            Repeat("Step kinds ({n}): `tool` runs one tool with fixed input; `agent` launches an agent with a prompt; `gate` waits for user approval; `map` runs a sub-workflow for each item of a list. Inputs may reference the outputs of earlier steps with ${steps.<id>.output}.\n", 4),
            "{" + S + ",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128},\"steps\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":64,\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9_-]{0,31}$\"},\"kind\":{\"type\":\"string\",\"enum\":[\"tool\",\"agent\",\"gate\",\"map\"]},\"tool\":{\"type\":\"string\"},\"input\":{\"type\":\"object\",\"additionalProperties\":{}},\"prompt\":{\"type\":\"string\"},\"depends_on\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":16},\"retries\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":5,\"default\":0},\"timeout_ms\":{\"type\":\"integer\",\"exclusiveMinimum\":0,\"maximum\":9007199254740991},\"items\":{\"type\":\"array\",\"items\":{}}},\"required\":[\"id\",\"kind\"],\"additionalProperties\":false}},\"concurrency\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":16,\"default\":4}},\"required\":[\"name\",\"steps\"],\"additionalProperties\":false}"),
        ("Write",
            "Writes a file to the local filesystem.\n\nUsage:\n- This tool will overwrite the existing file if there is one at the provided path.\n- If this is an existing file, you MUST use the Read tool first to read the file's contents. This tool will fail if you did not read the file first.\n- ALWAYS prefer editing existing files in the codebase. NEVER write new files unless explicitly required.\n- NEVER proactively create documentation files (*.md) or README files. Only create documentation files if explicitly requested by the User.\n- Only use emojis if the user explicitly requests it. Avoid writing emojis to files unless asked.",
            "{" + S + ",\"properties\":{\"file_path\":{\"type\":\"string\",\"description\":\"The absolute path to the file to write (must be absolute, not relative)\"},\"content\":{\"type\":\"string\",\"description\":\"The content to write to the file\"}},\"required\":[\"file_path\",\"content\"],\"additionalProperties\":false}"),
    ];
}
