using Melious.Functions;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.UseMiddleware<HttpInvocationCancel>();
builder.Services
    .AddApplicationInsightsTelemetryWorkerService()
    .ConfigureFunctionsApplicationInsights();
builder.Services.AddMeliousGateway(builder.Configuration);
builder.Services.AddMeliousFunctionsTelemetry(builder.Configuration);
builder.Services.AddMeliousFunctionsHost();
builder.Build().Run();
