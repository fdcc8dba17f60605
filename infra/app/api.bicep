// The Flex Consumption plan (FC1) and the function app (.NET 10 isolated worker). Storage, App Insights and
// Key Vault are reached with the user-assigned managed identity only: no keys or connection strings.
@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the function app (also its host name: <name>.azurewebsites.net).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to both resources; the app additionally gets azd-service-name=api.')
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Blob endpoint of the storage account (ends with a slash).')
param blobEndpoint string

@description('Queue endpoint of the storage account (ends with a slash).')
param queueEndpoint string

@description('Table endpoint of the storage account (ends with a slash).')
param tableEndpoint string

@description('Blob container the app package is deployed to.')
param deploymentContainerName string

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('App settings specific to the gateway (Melious__*), merged over the platform settings.')
param gatewaySettings object

@description('Upper bound of instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Concurrent HTTP executions per instance before the platform adds one. Streams are long and I/O bound.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Always-ready instances for the HTTP group (billed while idle, removes cold starts); 0 for none.')
@minValue(0)
param alwaysReadyHttpInstances int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// Identity-based host storage and telemetry. FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
// WEBSITE_RUN_FROM_PACKAGE are deliberately absent: Flex Consumption rejects them (functionAppConfig replaces them).
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The root function serves GET/HEAD /; should routing ever miss it, answer 204 rather than the HTML home page.
  AzureWebJobsDisableHomepage: 'true'
  // Thread-pool workers of the Functions host (and of the worker, which inherits it) do not spin before they sleep:
  // the host proxies every streamed chunk, one wake-up per token. Paced benchmark, C=64, 10 ms per token: 185 µs of
  // host + worker CPU per token with both spinning, 118 with the worker's own runtimeconfig setting alone, 98 with this
  // (docs/benchmarks-paced.md, "Levers").
  DOTNET_ThreadPool_UnfairSemaphoreSpinLimit: '0'
}

var appSettings = union(platformSettings, gatewaySettings)

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        for setting in items(appSettings): {
          name: setting.key
          value: string(setting.value)
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReadyHttpInstances > 0
          ? [
              {
                name: 'http'
                instanceCount: alwaysReadyHttpInstances
              }
            ]
          : []
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'dotnet-isolated'
        version: '10.0'
      }
    }
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
