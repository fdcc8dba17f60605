# azd postdeploy hook for Windows (PowerShell 7); the same steps as postdeploy.sh:
#   1. seeds the model tables with melious-admin (default upstream, a catalog entry per tier model, the
#      opus/sonnet/haiku mapping) unless they
#      already hold the azd environment's values from an earlier run;
#   2. creates a first API key, only if the apikeys table has none;
#   3. prints the lines that point Claude Code at the function app.
# melious-admin authenticates with your own Azure login (DefaultAzureCredential); infra grants you Storage Table
# Data Contributor on the storage account.
#
# Optional settings (azd env set NAME VALUE): MELIOUS_FIRST_KEY_ACCOUNT (default: default),
# MELIOUS_FIRST_KEY_NAME (default: claude-code), MELIOUS_SKIP_SEED=true.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$root = (Resolve-Path (Join-Path $PSScriptRoot '..\..')).Path
$adminProject = Join-Path $root 'src/Melious.Admin'

function Get-Setting([string] $name) {
    $value = [Environment]::GetEnvironmentVariable($name)
    if ([string]::IsNullOrEmpty($value) -and (Get-Command azd -ErrorAction SilentlyContinue)) {
        $value = (& azd env get-value $name 2>$null)
        if ($LASTEXITCODE -ne 0) { $value = '' }
    }
    if ($null -eq $value) { return '' }
    return ([string]$value).Trim()
}

function Get-RequiredSetting([string] $name) {
    $value = Get-Setting $name
    if ([string]::IsNullOrEmpty($value)) { throw "$name is not set in the azd environment; run 'azd provision' first" }
    return $value
}

# Arguments go in one string array: PowerShell would treat "--base-url" and the like as its own parameters.
function Invoke-Admin([string[]] $Arguments) {
    $output = & dotnet run --no-build --project $adminProject -- @Arguments
    if ($LASTEXITCODE -ne 0) { throw "melious-admin $($Arguments -join ' ') failed (exit $LASTEXITCODE)" }
    return $output
}

# The operator's role assignment was just created; data-plane RBAC can take a few minutes to apply.
function Invoke-AdminPatiently([string[]] $Arguments) {
    for ($attempt = 1; ; $attempt++) {
        $output = & dotnet run --no-build --project $adminProject -- @Arguments
        if ($LASTEXITCODE -eq 0) { return $output }
        if ($attempt -ge 20) { throw "melious-admin $($Arguments -join ' ') kept failing; check that you hold Storage Table Data Contributor on the account" }
        Write-Host "postdeploy: storage not reachable with your login yet (role assignments can take minutes to apply); retrying in 15 s ($attempt/20)"
        Start-Sleep -Seconds 15
    }
}

$functionHost = Get-RequiredSetting 'MELIOUS_FUNCTION_HOST'
$tableEndpoint = Get-RequiredSetting 'MELIOUS_STORAGE_TABLE_ENDPOINT'
$queueEndpoint = Get-RequiredSetting 'MELIOUS_STORAGE_QUEUE_ENDPOINT'
$baseUrl = Get-RequiredSetting 'MELIOUS_UPSTREAM_BASE_URL'
$protocol = Get-Setting 'MELIOUS_UPSTREAM_PROTOCOL'
if (-not $protocol) { $protocol = 'openai' }
$flavor = Get-Setting 'MELIOUS_UPSTREAM_FLAVOR'
if (-not $flavor) { $flavor = 'vllm' }
$mainModel = Get-RequiredSetting 'MELIOUS_MODEL_MAIN'
$secondaryModel = Get-Setting 'MELIOUS_MODEL_SECONDARY'
if (-not $secondaryModel) { $secondaryModel = $mainModel }
$lightweightModel = Get-Setting 'MELIOUS_MODEL_LIGHTWEIGHT'
if (-not $lightweightModel) { $lightweightModel = $secondaryModel }
$hasUpstreamKey = if (Get-Setting 'MELIOUS_UPSTREAM_API_KEY') { 'true' } else { 'false' }
$keyAccount = Get-Setting 'MELIOUS_FIRST_KEY_ACCOUNT'
if (-not $keyAccount) { $keyAccount = 'default' }
$keyName = Get-Setting 'MELIOUS_FIRST_KEY_NAME'
if (-not $keyName) { $keyName = 'claude-code' }

# melious-admin talks to the deployed account with the operator's Entra identity (no client id: not the app's MI).
$env:Melious__Storage__TableServiceUri = $tableEndpoint
$env:Melious__Storage__QueueServiceUri = $queueEndpoint
$env:Melious__Storage__CreateIfMissing = 'false'
foreach ($name in 'Melious__Storage__ConnectionString', 'Melious__Storage__ClientId', 'Melious__Storage__AccountName', 'Melious__Storage__TablePrefix') {
    Remove-Item "Env:$name" -ErrorAction SilentlyContinue
}
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

Write-Host 'postdeploy: building melious-admin'
& dotnet build $adminProject --nologo -v quiet | Out-Null
if ($LASTEXITCODE -ne 0) { throw 'could not build src/Melious.Admin' }

$seedSignature = "$baseUrl|$protocol|$flavor|$hasUpstreamKey|$mainModel|$secondaryModel|$lightweightModel"
if ((Get-Setting 'MELIOUS_SKIP_SEED') -eq 'true') {
    Write-Host 'postdeploy: MELIOUS_SKIP_SEED=true, not touching the model tables'
}
elseif ((Get-Setting 'MELIOUS_SEEDED') -eq $seedSignature) {
    Write-Host "postdeploy: model tables already hold these upstream and tier settings; not reseeding (azd env set MELIOUS_SEEDED '' to force)"
}
else {
    Write-Host "postdeploy: seeding the model tables (default upstream $baseUrl, tiers $mainModel / $secondaryModel / $lightweightModel)"
    if ($hasUpstreamKey -eq 'true') {
        Invoke-AdminPatiently @('models', 'set-default', '--base-url', $baseUrl, '--protocol', $protocol, '--flavor', $flavor, '--api-key-ref', 'config:Melious:Upstream:ApiKey') | Out-Host
    }
    else {
        Invoke-AdminPatiently @('models', 'set-default', '--base-url', $baseUrl, '--protocol', $protocol, '--flavor', $flavor) | Out-Host
    }
    # A catalog entry per tier model (`models set` merges, so existing entries keep their fields); for a model it
    # knows, melious-admin suggests energy parameters, which are then applied.
    foreach ($model in @($mainModel, $secondaryModel, $lightweightModel) | Select-Object -Unique) {
        $out = (Invoke-Admin @('models', 'set', $model)) -join "`n"
        $match = [regex]::Match($out, 'e\.g\. --active-params ([0-9.]+) --total-params ([0-9.]+) --quant-bits ([0-9]+)')
        if ($match.Success) {
            Invoke-Admin @('models', 'set', $model, '--active-params', $match.Groups[1].Value, '--total-params', $match.Groups[2].Value, '--quant-bits', $match.Groups[3].Value) | Out-Null
            Write-Host "postdeploy: catalog entry $model (active $($match.Groups[1].Value)B, total $($match.Groups[2].Value)B, $($match.Groups[3].Value)-bit)"
        }
        else {
            Write-Host "postdeploy: catalog entry $model"
        }
    }
    Invoke-Admin @('tiers', 'set', 'opus', $mainModel) | Out-Host
    Invoke-Admin @('tiers', 'set', 'sonnet', $secondaryModel) | Out-Host
    Invoke-Admin @('tiers', 'set', 'haiku', $lightweightModel) | Out-Host
    if (Get-Command azd -ErrorAction SilentlyContinue) {
        & azd env set MELIOUS_SEEDED $seedSignature | Out-Null
    }
}

$keysJson = (Invoke-AdminPatiently @('keys', 'list', '--format', 'json')) -join "`n"
$apiKey = ''
if ($keysJson.Contains('{')) {
    Write-Host 'postdeploy: API keys exist already; not creating another'
}
else {
    Write-Host "postdeploy: creating the first API key (account $keyAccount, name $keyName)"
    $created = @(@(Invoke-Admin @('keys', 'create', '--account', $keyAccount, '--name', $keyName)) | Where-Object { -not [string]::IsNullOrWhiteSpace($_) })
    if ($created.Count -eq 0) { throw 'melious-admin keys create printed no key' }
    $apiKey = ([string]$created[-1]).Trim()
}

$gatewayUrl = "https://$functionHost"
$token = if ($apiKey) { $apiKey } else { '<your key>' }
Write-Host ''
Write-Host "Melious gateway deployed: $gatewayUrl"
Write-Host ''
Write-Host 'Point Claude Code at it. PowerShell:'
Write-Host ''
Write-Host "`$env:ANTHROPIC_BASE_URL = '$gatewayUrl'"
Write-Host "`$env:ANTHROPIC_AUTH_TOKEN = '$token'"
Write-Host "`$env:ANTHROPIC_API_KEY = ''"
Write-Host "`$env:ANTHROPIC_DEFAULT_OPUS_MODEL = 'claude-opus'"
Write-Host "`$env:ANTHROPIC_DEFAULT_SONNET_MODEL = 'claude-sonnet'"
Write-Host "`$env:ANTHROPIC_DEFAULT_HAIKU_MODEL = 'claude-haiku'"
Write-Host ''
Write-Host 'bash / zsh (WSL, Git Bash, macOS, Linux):'
Write-Host ''
Write-Host "export ANTHROPIC_BASE_URL=$gatewayUrl"
Write-Host "export ANTHROPIC_AUTH_TOKEN=$token"
Write-Host 'export ANTHROPIC_API_KEY=""'
Write-Host 'export ANTHROPIC_DEFAULT_OPUS_MODEL=claude-opus'
Write-Host 'export ANTHROPIC_DEFAULT_SONNET_MODEL=claude-sonnet'
Write-Host 'export ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku'
Write-Host ''
Write-Host "claude-opus, claude-sonnet and claude-haiku are routed by tier to $mainModel, $secondaryModel and $lightweightModel;"
Write-Host 'change a tier with: dotnet run --project src/Melious.Admin -- tiers set sonnet <model>'
if ($apiKey) {
    Write-Host 'The key is shown only now; only its hash is stored.'
}
else {
    Write-Host "A new key: dotnet run --project src/Melious.Admin -- keys create --account $keyAccount --name <name>"
}
