// Melious Functions on Azure: `azd up` provisions everything below into one resource group.
//
//   Flex Consumption plan (FC1) + function app (.NET 10 isolated)      app/api.bicep
//   storage account: host storage, deployment container, usage-events(+poison) queues, gateway tables
//                                                                        app/storage.bicep
//   user-assigned managed identity and its data-plane roles              app/identity.bicep, app/rbac.bicep
//   Log Analytics + Application Insights (local auth disabled)           app/monitoring.bicep
//   Key Vault (RBAC) with the upstream API key and the dashboard session secret, read via Key Vault references
//                                                                        app/keyvault.bicep
//
// Every resource is declared in these local files; no registry modules are used.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment. Names the resource group and seeds unique resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the operator running azd (AZURE_PRINCIPAL_ID); gets Storage Table Data Contributor for seeding.')
param principalId string = ''

@description('Model server base URL. OpenAI protocol: the base /chat/completions is appended to (https://host/v1). Anthropic protocol: the base /v1/messages is appended to.')
param upstreamBaseUrl string

@description('API key of the model server. Stored in Key Vault only; empty for a server without authentication.')
@secure()
param upstreamApiKey string = ''

@description('Secret that signs usage-dashboard session cookies: at least 32 random characters, e.g. openssl rand -base64 48. Stored in Key Vault only. Empty: each instance makes its own, so dashboard sign-ins do not survive restarts or reach other instances.')
@secure()
param dashboardSessionSecret string = ''

@description('Wire protocol of the model server.')
@allowed([
  'openai'
  'anthropic'
])
param upstreamProtocol string = 'openai'

@description('Server family (picks non-standard request extras).')
@allowed([
  'vllm'
  'sglang'
  'ollama'
  'llamacpp'
  'openai'
])
param upstreamFlavor string = 'vllm'

@description('Upstream model for the opus tier (names containing "opus", Claude Code\'s main model).')
param mainModel string

@description('Upstream model for the sonnet tier; empty uses the main model.')
param secondaryModel string = ''

@description('Upstream model for the haiku tier (Claude Code\'s subagents and background calls); empty uses the sonnet tier\'s model.')
param lightweightModel string = ''

@description('Azure region the models run in, for energy and carbon estimates; empty uses the deployment region.')
param energyRegion string = ''

@description('Override of the grid carbon intensity in gCO2e/kWh (a number); empty uses the region\'s default.')
param gridGco2ePerKwh string = ''

@description('Upper bound of function app instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP requests (streams) per instance before scaling out.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 64

@description('Always-ready instances for the HTTP functions: no cold starts, billed while idle. 0 scales to zero.')
@minValue(0)
@maxValue(20)
param alwaysReadyHttpInstances int = 0

@description('Daily Log Analytics ingestion cap in GB; -1 for none.')
param logDailyQuotaGb int = -1

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var upstreamApiKeySecretName = 'melious-upstream-api-key'
var dashboardSessionSecretName = 'melious-dashboard-session-secret'
var usageQueueName = 'usage-events'
var usagePoisonQueueName = '${usageQueueName}-poison'
var tableNames = [
  'apikeys'
  'models'
  'billing'
  'energy'
  'usagedaily'
  'usageledger'
  'ratelimits'
]

var effectiveSecondaryModel = empty(secondaryModel) ? mainModel : secondaryModel
var effectiveLightweightModel = empty(lightweightModel) ? effectiveSecondaryModel : lightweightModel
var effectiveEnergyRegion = empty(energyRegion) ? location : energyRegion

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.appInsightsComponents}${resourceToken}'
    location: location
    tags: tags
    dailyQuotaGb: logDailyQuotaGb
  }
}

module storage 'app/storage.bicep' = {
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: [
      usageQueueName
      usagePoisonQueueName
    ]
    tableNames: tableNames
  }
}

module keyVault 'app/keyvault.bicep' = {
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    upstreamApiKeySecretName: upstreamApiKeySecretName
    upstreamApiKey: upstreamApiKey
    dashboardSessionSecretName: dashboardSessionSecretName
    dashboardSessionSecret: dashboardSessionSecret
  }
}

module rbac 'app/rbac.bicep' = {
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
  }
}

// Settings read by the gateway core (GatewayOptions, section "Melious"). Infrastructure owns the tables and
// queues, so the app does not try to create them; the queue trigger replaces the self-host's consumer.
var gatewaySettings = union(
  {
    Melious__Storage__TableServiceUri: storage.outputs.tableEndpoint
    Melious__Storage__QueueServiceUri: storage.outputs.queueEndpoint
    Melious__Storage__ClientId: identity.outputs.clientId
    Melious__Storage__CreateIfMissing: 'false'
    Melious__Upstream__BaseUrl: upstreamBaseUrl
    Melious__Upstream__Protocol: upstreamProtocol
    Melious__Upstream__Flavor: upstreamFlavor
    Melious__Models__Main: mainModel
    Melious__Models__Secondary: effectiveSecondaryModel
    Melious__Models__Lightweight: effectiveLightweightModel
    Melious__Energy__Region: effectiveEnergyRegion
    Melious__Usage__QueueName: usageQueueName
    Melious__Usage__PoisonQueueName: usagePoisonQueueName
    Melious__Usage__RunConsumer: 'false'
  },
  empty(upstreamApiKey)
    ? {}
    : {
        Melious__Upstream__ApiKey: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.upstreamApiKeySecretUri})'
      },
  empty(dashboardSessionSecret)
    ? {}
    : {
        Melious__Dashboard__SessionSecret: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.dashboardSessionSecretUri})'
      },
  empty(gridGco2ePerKwh)
    ? {}
    : {
        Melious__Energy__GridGco2ePerKwh: gridGco2ePerKwh
      }
)

module api 'app/api.bicep' = {
  scope: rg
  params: {
    planName: '${abbrs.webServerFarms}${resourceToken}'
    name: functionAppName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    gatewaySettings: gatewaySettings
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
  }
  // The app resolves its Key Vault reference and reaches storage at start: grant the roles first.
  dependsOn: [
    rbac
  ]
}

// azd writes these into the environment (.azure/<env>/.env); scripts/azd/postdeploy.* read them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output MELIOUS_FUNCTION_HOST string = api.outputs.defaultHostName
output MELIOUS_GATEWAY_URL string = 'https://${api.outputs.defaultHostName}'
output MELIOUS_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output MELIOUS_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output MELIOUS_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output MELIOUS_KEY_VAULT_NAME string = keyVault.outputs.name
output MELIOUS_UPSTREAM_API_KEY_SECRET_NAME string = upstreamApiKeySecretName
output MELIOUS_DASHBOARD_SESSION_SECRET_NAME string = dashboardSessionSecretName
output MELIOUS_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output MELIOUS_UPSTREAM_BASE_URL string = upstreamBaseUrl
output MELIOUS_UPSTREAM_PROTOCOL string = upstreamProtocol
output MELIOUS_UPSTREAM_FLAVOR string = upstreamFlavor
output MELIOUS_MODEL_MAIN string = mainModel
output MELIOUS_MODEL_SECONDARY string = secondaryModel
output MELIOUS_MODEL_LIGHTWEIGHT string = lightweightModel
